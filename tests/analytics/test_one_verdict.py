"""One run, one verdict: for a real run of each kind, the analytics service's ``RunAnalyzed`` (what
``mlpower demo`` prints), the analytics API (what ``mlpower lab run`` prints) and ``mlpower check``
on the run's folder give the same verdict from the same findings; and a window whose last 40 % of
samples were lost fails on coverage, its energy reported over the covered time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlpower.analytics.app import create_app
from mlpower.analytics.check import check_run_dir
from mlpower.analytics.service import AnalyticsService
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.bus import InMemoryBus
from mlpower.cli import _register, app
from mlpower.lab.report import verdict_text
from mlpower.loadgen_log import parse_stamp
from mlpower.schema import Finding, RunAnalyzed
from mlpower.settings import load_settings
from typer.testing import CliRunner

from .alterations import edit_lines
from .real_runs import RealRun

pytestmark = pytest.mark.slow
_register(app)


def outcomes(findings: list[Finding] | tuple[Finding, ...]) -> list[tuple[str, str, str]]:
    return [(f.rule, f.status, f.severity) for f in findings]


def assert_one_verdict(run: RealRun, tmp_path: Path) -> RunAnalyzed:
    """RunAnalyzed == the API's run == `mlpower check` (the command line) on the run's folder."""
    assert run.analyzed is not None and run.table is not None
    analyzed = run.analyzed
    # the API of a fresh service over the same table: what `mlpower lab run` reads and prints
    service = AnalyticsService(load_settings(AnalyticsSettings, bus="memory", results_dir=tmp_path,
                                             store_path=run.table), InMemoryBus())
    with TestClient(create_app(service)) as client:
        served = RunAnalyzed.model_validate(client.get(f"/runs/{analyzed.run_id}").json())
    out = tmp_path / "check.json"
    result = CliRunner().invoke(app, ["check", str(run.director), "--json", str(out), "--min-duration-s",
                                      str(run.options.min_duration_s)], env={"COLUMNS": "200"})
    checked = json.loads(out.read_text())
    assert result.exit_code == (1 if analyzed.verdict == "fail" else 0), result.output
    assert served.verdict == analyzed.verdict == checked["verdict"]
    assert verdict_text(served) == verdict_text(analyzed)  # the line `lab run` and the demo print
    assert outcomes(served.findings) == outcomes(analyzed.findings) == \
        outcomes([Finding.model_validate(f) for f in checked["findings"]])
    assert served.summary == analyzed.summary
    assert checked["summary"]["energy_j"] == analyzed.summary.energy_j
    return analyzed


def test_bus_mode_run_one_verdict(real_bus: RealRun, tmp_path: Path) -> None:
    analyzed = assert_one_verdict(real_bus, tmp_path)
    report = check_run_dir(real_bus.director, real_bus.options)
    assert report.kind == "bus" and "driver is 'bus'" in report.kind_evidence  # the director states it
    status = {f.rule: f for f in analyzed.findings}
    # no power-dev client in a bus-mode run: its rules are not applicable, with the reason
    for rule in ("client_sources_checksum", "uuid", "session_name", "phase_time_difference",
                 "loadgen_window_in_phases", "client_server_messages", "results_checksum"):
        assert status[rule].status == "not_applicable" and "bus-mode run" in status[rule].message, status[rule]
    for rule in ("samples_in_window", "coverage", "uncertainty", "overrange", "sample_interval", "min_duration",
                 "loadgen_result_valid", "ranging_vs_testing_power"):
        assert status[rule].status == "pass", status[rule]
    # the director's fast sleeps mark the run debug: it would not pass review, and says why
    assert [f.rule for f in analyzed.findings if f.status == "fail" and f.severity == "error"] == ["debug_disabled"]
    summary = analyzed.summary
    assert summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None
    assert abs(summary.avg_power_w - 250.0) <= summary.avg_power_uncertainty_w
    assert summary.performance and summary.efficiency_unit == "samples/J"  # from the agent's LoadGen log
    # a busy machine can stretch a read interval past 1.25 s: coverage may fall short of 100 %, not of the rule
    assert summary.compliant_durations is False and summary.coverage_ratio is not None
    assert summary.coverage_ratio >= status["coverage"].evidence["required_ratio"]


def test_powerdev_session_one_verdict(real_scpi: RealRun, tmp_path: Path) -> None:
    """The director's side of a power-dev session (what analytics sees) and the client's tree (what
    the submitter checks): the same verdict, the same failing rules."""
    analyzed = assert_one_verdict(real_scpi, tmp_path)
    status = {f.rule: f for f in analyzed.findings}
    assert status["uuid"].status == "not_applicable" and "client's output tree" in status["uuid"].message
    assert status["coverage"].status == "pass" and "phase" in status["coverage"].evidence["window_source"]
    client_side = check_run_dir(real_scpi.session, real_scpi.options)
    assert client_side.kind == "powerdev" and client_side.verdict == analyzed.verdict
    failing = {f.rule for f in analyzed.findings if f.status == "fail" and f.severity == "error"}
    assert {f.rule for f in client_side.errors} == failing == {"debug_disabled"}


def test_direct_run_one_verdict(real_direct: RealRun, tmp_path: Path) -> None:
    analyzed = assert_one_verdict(real_direct, tmp_path)
    status = {f.rule: f for f in analyzed.findings}
    assert check_run_dir(real_direct.director).kind == "direct"
    assert status["uuid"].status == "not_applicable" and "direct run" in status["uuid"].message
    # no LoadGen ran: no window to average over, said as such; the samples are judged over the phase
    assert status["samples_in_window"].status == "fail" and "no LoadGen power window" in \
        status["samples_in_window"].message
    assert status["coverage"].status == "pass" and status["uncertainty"].status == "pass"
    assert analyzed.summary.avg_power_w is None and analyzed.verdict == "fail"


def test_last_forty_percent_of_samples_lost_fails_on_coverage(real_bus: RealRun, tmp_path: Path) -> None:
    """The issue's case on a real run tree: run_1/spl.txt lost the window's last 40 % of samples, and
    samples.parquet and documents.jsonl are gone, so spl.txt is all there is."""
    run = Path(shutil.copytree(real_bus.director, tmp_path / "run"))
    (run / "samples.parquet").unlink()
    (run / "documents.jsonl").unlink()
    before = check_run_dir(run, real_bus.options)
    assert before.finding("coverage").status == "pass" and before.summary is not None
    assert before.summary.coverage_ratio is not None and before.summary.coverage_ratio > 0.9
    window = before.summary.window_s
    assert window is not None and window > 6.0  # long enough that 40 % is more than an interval per edge
    begin = float(before.finding("coverage").evidence["window_begin_utc_s"])
    end = begin + window
    inside = [line for line in (run / "run_1" / "spl.txt").read_text().splitlines()
              if line.startswith("Time") and begin < parse_stamp(line.split(",")[1]) < end]
    lost = set(inside[len(inside) - round(0.4 * len(inside)):])
    edit_lines(run / "run_1" / "spl.txt", lambda rows: [r for r in rows if r not in lost])

    report = check_run_dir(run, real_bus.options)
    finding = report.finding("coverage")
    assert finding.status == "fail" and finding.severity == "error" and report.verdict == "fail"
    assert "less than 100 % minus one sample interval" in finding.message
    tail = max(finding.evidence["uncovered"], key=lambda span: span["seconds"])
    # where and how long: from the last sample kept to where the first sample after the window reaches back
    assert begin < tail["begin_utc_s"] < tail["end_utc_s"] <= end + 1e-6 and tail["seconds"] >= 0.4 * window - 1.5
    summary = report.summary
    assert summary is not None and summary.avg_power_w is not None and summary.covered_s is not None
    assert summary.coverage_ratio == pytest.approx(summary.covered_s / window)
    assert summary.coverage_ratio < 0.75
    # the energy is the covered time's, never the average times the whole window
    assert summary.energy_j == pytest.approx(summary.avg_power_w * summary.covered_s, rel=0.02)
    assert summary.energy_j < 0.8 * before.summary.energy_j  # type: ignore[operator]
    assert report.finding("samples_in_window").status == "pass"  # the checker's own rule still passes
