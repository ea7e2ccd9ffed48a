"""Every declared compliance rule: a passing case (the clean tree) and a failing case (the tree
altered for that rule), where the failing finding names the rule and carries its evidence."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mlpower.analytics.check import check_run_dir
from mlpower.analytics.loadgen import parse_stamp
from mlpower.analytics.rules import RULES, RULES_BY_ID, CheckOptions

from .trees import edit_json, rehash, stamp


def edit_lines(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    path.write_text("\n".join(change(path.read_text().split("\n"))))


def window_of(session: Path) -> tuple[float, float]:
    text = (session / "run_1" / "mlperf_log_detail.txt").read_text()
    begin = json.loads(next(l for l in text.splitlines() if "power_begin" in l)[8:])["value"]
    end = json.loads(next(l for l in text.splitlines() if "power_end" in l)[8:])["value"]
    return parse_stamp(begin), parse_stamp(end)


def set_detail(session: Path, key: str, value: object) -> None:
    def change(lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            if line.startswith(":::MLLOG") and json.loads(line[8:])["key"] == key:
                record = json.loads(line[8:])
                record["value"] = value
                line = ":::MLLOG " + json.dumps(record)
            out.append(line)
        return out
    edit_lines(session / "run_1" / "mlperf_log_detail.txt", change)


def spl_watts(session: Path, change: Callable[[int, float], float | None], folder: str = "run_1") -> None:
    def lines(rows: list[str]) -> list[str]:
        out = []
        for i, line in enumerate(rows):
            if line.startswith("Time"):
                fields = line.split(",")
                new = change(i, float(fields[3]))
                if new is None:
                    continue
                fields[3] = f"{new:.6f}"
                line = ",".join(fields)
            out.append(line)
        return out
    edit_lines(session / folder / "spl.txt", lines)


def shift_time_replies(data: dict) -> None:
    for message in data["messages"]:
        if message["cmd"] == "time":
            message["reply"] = repr(float(message["reply"]) + 0.6)


def set_phase(data: dict, mode: str, index: int, wall: float) -> None:
    data["phases"][mode][index][0] = wall


def move_phase1_after_begin(s: Path) -> None:
    begin, _ = window_of(s)
    for side in ("client", "server"):
        edit_json(s, side, lambda d: set_phase(d, "testing", 1, begin + 1.0))


def documents_overrange(s: Path) -> None:
    begin, end = window_of(s)
    lines = (s / "documents.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        doc = json.loads(line)
        if doc["type"] == "run.page" and doc["mode"] == "testing":
            j = next(k for k, t in enumerate(doc["t_utc_s"]) if begin < t < end)
            doc["flags"][j] |= 1
            lines[i] = json.dumps(doc)
            break
    (s / "documents.jsonl").write_text("\n".join(lines) + "\n")


def ptd_warning(s: Path) -> None:
    begin, _ = window_of(s)
    with open(s / "power" / "ptd_logs.txt", "a") as handle:
        handle.write(f"{stamp(begin + 100)}: WARNING: Uncertainty 1.23%, which is above 1.00% limit for the last "
                     "sample!\n")


def corrupt_row(s: Path) -> None:
    edit_lines(s / "run_1" / "spl.txt", lambda rows: [r.replace("Watts", "Wat#s") if i == 49 else r
                                                      for i, r in enumerate(rows)])


# rule id -> (tree kind, alteration, re-record hashes afterwards, expected evidence keys)
FAILURES: dict[str, tuple[str, Callable[[Path], None], bool, tuple[str, ...]]] = {
    "client_sources_checksum": ("ptd", lambda s: edit_json(s, "client", lambda d: d["sources"].update(
        {"lib/client.py": "f" * 40})), False, ("differing_files",)),
    "server_sources_checksum": ("ptd", lambda s: edit_json(s, "server", lambda d: d["sources"].pop(
        "lib/server.py")), False, ("differing_files",)),
    "ptd_messages": ("ptd", lambda s: edit_json(s, "server", lambda d: d["ptd_messages"][14].update(
        {"reply": "Error: measurement already running"})), False, ("index", "cmd", "reply", "expected")),
    "uuid": ("ptd", lambda s: edit_json(s, "client", lambda d: d["uuid"].update(
        {"server": "00000000-0000-4000-8000-000000000000"})), False, ("client", "server")),
    "session_name": ("ptd", lambda s: edit_json(s, "client", lambda d: d.update({"session_name": "other"})), False,
                     ("client", "server")),
    "phase_time_difference": ("ptd", lambda s: edit_json(s, "server", lambda d: set_phase(
        d, "testing", 2, d["phases"]["testing"][2][0] + 1.5)), False, ("mode", "phase", "delta_s")),
    "loadgen_window_in_phases": ("ptd", move_phase1_after_begin, False, ("file", "marker", "marker_utc_s")),
    "ranging_testing_duration": ("ptd", lambda s: set_detail(s, "power_end", stamp(window_of(s)[0] + 200)),
                                 True, ("ranging_s", "testing_s")),
    "ranging_vs_testing_power": ("ptd", lambda s: spl_watts(s, lambda i, w: w * 0.9), True,
                                 ("ranging_avg_power_w", "testing_avg_power_w", "delta_pct")),
    "client_server_messages": ("ptd", lambda s: edit_json(s, "server", lambda d: d["messages"][2].update(
        {"reply": "OK other,3bb4a5fd-fcef-475b-aefe-17ffa12409a0"})), False, ("index", "client", "server")),
    "results_checksum": ("ptd", lambda s: (s / "run_1" / "mlperf_log_summary.txt").write_text("edited\n"), False,
                         ("files",)),
    "ptd_log_messages": ("ptd", ptd_warning, True, ("file", "line", "text")),
    "ptd_config": ("ptd", lambda s: edit_json(s, "server", lambda d: d["ptd_config"][0].update({"device_type": 1})),
                   False, ("device_type",)),
    "debug_disabled": ("ptd", lambda s: edit_json(s, "server", lambda d: d.update({"debug": True})), False,
                       ("debug",)),
    "files_readable": ("ptd", corrupt_row, True, ("problems",)),
    "loadgen_result_valid": ("ptd", lambda s: set_detail(s, "result_validity", "INVALID"), True, ("file",)),
    "samples_in_window": ("ptd", lambda s: spl_watts(s, lambda i, w: -1.0), True, ("samples_in_window", "flagged")),
    "flagged_samples": ("ptd", lambda s: spl_watts(s, lambda i, w: -1.0 if 100 <= i < 103 else w), True,
                        ("flagged", "samples_in_window")),
    "sample_interval": ("ptd", lambda s: spl_watts(s, lambda i, w: None if i % 2 else w), True,
                        ("median_interval_s",)),
    "sample_gaps": ("ptd", lambda s: spl_watts(s, lambda i, w: None if 200 <= i < 205 else w), True,
                    ("gaps", "longest_s")),
    "uncertainty": ("ptd", lambda s: edit_lines(s / "run_1" / "ptd_out.txt", lambda rows: [
        r.replace("0.0024,0.0023,0.0026", "0.0080,0.0023,0.0123") for r in rows]), False, ("max_relative",)),
    "overrange": ("scpi", documents_overrange, False, ("first_t_utc_s", "count")),
    "clock_offset": ("ptd", lambda s: edit_json(s, "client", shift_time_replies), False, ("max_offset_s",)),
    "min_duration": ("ptd", lambda s: set_detail(s, "power_end", stamp(window_of(s)[0] + 500)), True,
                     ("window_s", "min_duration_s")),
}


def test_every_rule_has_a_failing_case() -> None:
    assert set(FAILURES) == set(RULES_BY_ID)


def test_clean_ptdaemon_tree_passes_every_rule(ptd_tree: Path, options: CheckOptions) -> None:
    report = check_run_dir(ptd_tree, options)
    assert [f.rule for f in report.findings] == [r.id for r in RULES]
    statuses = {f.rule: f.status for f in report.findings}
    assert statuses.pop("overrange") == "not_applicable"  # spl.txt carries no overrange flag
    assert set(statuses.values()) == {"pass"}, [f for f in report.findings if f.status != "pass"]
    assert report.verdict == "pass" and report.uses_ptdaemon


def test_direct_scpi_tree_reports_ptdaemon_checks_not_applicable(scpi_tree: Path, options: CheckOptions) -> None:
    report = check_run_dir(scpi_tree, options)
    not_applicable = {f.rule for f in report.findings if f.status == "not_applicable"}
    assert not_applicable == {r.id for r in RULES if r.ptdaemon_only}
    for rule in not_applicable:
        assert "PTDaemon" in report.finding(rule).message and "wt310e" in report.finding(rule).message
    assert {f.status for f in report.findings if f.rule not in not_applicable} == {"pass"}
    assert report.verdict == "pass" and not report.uses_ptdaemon
    assert report.finding("uncertainty").evidence["stream"] == "wt310e-1"  # from the run's own stream


@pytest.mark.parametrize("rule_id", list(FAILURES))
def test_rule_fails_on_its_violation(rule_id: str, ptd_tree: Path, scpi_tree: Path, options: CheckOptions) -> None:
    kind, alter, re_record, evidence_keys = FAILURES[rule_id]
    session = ptd_tree if kind == "ptd" else scpi_tree
    alter(session)
    if re_record:
        rehash(session)
    finding = check_run_dir(session, options).finding(rule_id)
    assert finding.rule == rule_id and finding.status == "fail", finding
    assert finding.severity == RULES_BY_ID[rule_id].severity
    assert set(evidence_keys) <= set(finding.evidence), finding.evidence
    assert finding.message


def test_corrupt_row_names_file_and_line(ptd_tree: Path, options: CheckOptions) -> None:
    corrupt_row(ptd_tree)
    rehash(ptd_tree)
    report = check_run_dir(ptd_tree, options)
    message = report.finding("files_readable").message
    assert "run_1/spl.txt:50: corrupt sample row" in message
    assert report.verdict == "fail"
    # the corrupt row is dropped, never averaged: the average still comes from the 609 good rows
    assert report.summary is not None and report.summary.samples_in_window == 609


def test_truncated_spl_names_file_and_line(ptd_tree: Path, options: CheckOptions) -> None:
    path = ptd_tree / "run_1" / "spl.txt"
    text = path.read_text().rstrip("\n")
    path.write_text(text[: text.rindex("Volts")])  # cut inside the last row, as a lost download would
    rehash(ptd_tree)
    problems = check_run_dir(ptd_tree, options).finding("files_readable").evidence["problems"]
    lines = text.count("\n") + 1
    assert any(p.endswith(f"spl.txt:{lines}: truncated: the last line has no line end") for p in problems)
    assert any(f"spl.txt:{lines}: corrupt sample row" in p for p in problems)


def test_loadgen_log_without_markers(ptd_tree: Path, options: CheckOptions) -> None:
    edit_lines(ptd_tree / "run_1" / "mlperf_log_detail.txt", lambda rows: [r for r in rows if "power_" not in r])
    rehash(ptd_tree)
    report = check_run_dir(ptd_tree, options)
    finding = report.finding("samples_in_window")
    assert finding.status == "fail" and "mlperf_log_detail.txt: no power_begin and no power_end marker" in \
        finding.message
    assert report.summary is not None and report.summary.avg_power_w is None  # no number rather than a wrong one


def test_unknown_clock_offset(ptd_tree: Path, options: CheckOptions) -> None:
    def drop_time(data: dict) -> None:
        data["messages"] = [m for m in data["messages"] if m["cmd"] != "time"]
    edit_json(ptd_tree, "client", drop_time)
    finding = check_run_dir(ptd_tree, options).finding("clock_offset")
    assert finding.status == "fail" and "clock offset unknown" in finding.message
    assert finding.evidence["file"] == "power/client.json"


def test_sources_checks_not_applicable_without_reference(ptd_tree: Path) -> None:
    report = check_run_dir(ptd_tree, CheckOptions())
    for rule in ("client_sources_checksum", "server_sources_checksum"):
        assert report.finding(rule).status == "not_applicable"
        assert "sources_checksums.json" in report.finding(rule).message


def test_mlperf_result_folder_layout(ptd_tree: Path, options: CheckOptions, tmp_path: Path) -> None:
    """A submission keeps the session as <...>/<scenario>/performance/{power,ranging,run_1}."""
    scenario = tmp_path / "closed" / "lab" / "results" / "sys" / "resnet50" / "Offline"
    scenario.mkdir(parents=True)
    ptd_tree.rename(scenario / "performance")
    report = check_run_dir(scenario, options)
    assert report.run_dir.endswith("performance") and report.verdict == "pass"


def test_missing_server_json_fails_naming_the_file(ptd_tree: Path, options: CheckOptions) -> None:
    (ptd_tree / "power" / "server.json").unlink()
    report = check_run_dir(ptd_tree, options)
    assert report.finding("uuid").status == "fail"
    assert "power/server.json: missing" in report.finding("uuid").message
    assert report.finding("ptd_messages").status == "not_applicable"
    assert "cannot tell" in report.finding("ptd_messages").message
