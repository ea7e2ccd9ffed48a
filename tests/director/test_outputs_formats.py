"""The pure formatters of the output tree, against the document's examples and rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlpower.director import outputs
from mlpower.director.sources import Reading
from mlpower.ptdformat import parse_sample_line
from mlpower.schema import SampleFlag

from .formats import SPL_RE, parse_server_json


def _r(t: float, w: float | None, flags: int = 0, unc: float | None = 0.5) -> Reading:
    return Reading(t, w, 209.69, 0.6261, 0.8328, 300.0, 1.0, unc, flags)


def test_spl_line_matches_the_documented_example() -> None:
    # doc §3.4: Time,02-27-2023 20:50:55.939,Watts,109.350000,Volts,209.690000,Amps,0.626100,PF,0.832800,Mark,...
    t = 1677531055.939
    line = outputs.spl_fields(_r(t, 109.35), "2023-02-27_20-37-33_testing")
    assert line == ("Time,02-27-2023 20:50:55.939,Watts,109.350000,Volts,209.690000,Amps,0.626100,PF,0.832800,"
                    "Mark,2023-02-27_20-37-33_testing")
    assert SPL_RE.match(line)
    parsed = parse_sample_line(line)
    assert parsed is not None and parsed.power_w == 109.35 and parsed.t_utc_s == pytest.approx(t, abs=1e-3)


def test_flagged_samples_are_written_as_not_available() -> None:
    text = outputs.spl_text([_r(0, 100), _r(1, 5000, int(SampleFlag.OVERRANGE)), _r(2, None, int(SampleFlag.MISSING))],
                            "m")
    watts = [line.split(",")[3] for line in text.splitlines() if line]
    assert watts == ["100.000000", "-1.000000", "-1.000000"] and text.endswith("\n\n")


def test_watts_and_uncertainty_replies() -> None:
    readings = [_r(0, 100, unc=0.5), _r(1, 200, unc=0.4), _r(2, None, int(SampleFlag.MISSING), None)]
    assert outputs.watts_reply(readings) == "Watts,150.000000,100.000000,200.000000,3,1,2"
    assert outputs.uncertainty_reply(readings) == "Uncertainty,0.003500,0.002000,0.005000,3,1,2,0"
    auto = [_r(0, 100, unc=None), _r(1, 100, unc=None)]
    assert outputs.uncertainty_reply(auto) == "Uncertainty,-1.0,10000000.000000,0.000000,2,0,0,2"  # like PTD
    assert outputs.watts_reply([]) == "Watts,-1.000000,-1.000000,-1.000000,0,0,0"


def test_console_lines_for_problem_samples() -> None:
    assert outputs.sample_console_lines(_r(0, None, int(SampleFlag.MISSING)), "testing", "WT310E") == \
        ["ERROR: Bad watts reading nan from WT310E"]
    assert outputs.sample_console_lines(_r(0, 100, unc=None), "ranging", "x") == \
        ["ERROR: Can't evaluate uncertainty of this sample!"]
    assert outputs.sample_console_lines(_r(0, 100, unc=1.5), "testing", "x") == \
        ["WARNING: Uncertainty 1.50%, which is above 1.00% limit for the last sample!"]
    assert outputs.sample_console_lines(_r(0, 100, unc=0.5), "testing", "x") == []


def test_server_json_key_order_debug_and_no_trailing_newline(tmp_path: Path) -> None:
    summary = {key: [] if key in ("messages", "ptd_messages", "ptd_config") else {} for key in
               outputs.SERVER_JSON_KEYS}
    summary.update(version="1.0", timezone=0, session_name="s", debug=False, mlpower={"x": 1})
    text = outputs.server_json_text(summary)
    assert "debug" not in json.loads(text) and list(json.loads(text))[-1] == "mlpower"
    (tmp_path / "server.json").write_text(outputs.server_json_text({**summary, "debug": True}))
    assert parse_server_json(tmp_path / "server.json")["debug"] is True


def test_results_hashes_cover_the_three_folders_but_not_server_json(tmp_path: Path) -> None:
    for name in ("power/server.log", "power/server.json", "ranging/spl.txt", "run_1/spl.txt", "samples.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    hashes = outputs.results_hashes(tmp_path)
    assert list(hashes) == ["power/server.log", "ranging/spl.txt", "run_1/spl.txt"]
    assert hashes["run_1/spl.txt"] == __import__("hashlib").sha1(b"run_1/spl.txt").hexdigest()


def test_session_id() -> None:
    assert outputs.session_id(1795891638.9, "mylabel") == "2026-11-28_18-47-18_mylabel"
    assert outputs.session_id(1795891638.9, "") == "2026-11-28_18-47-18"
