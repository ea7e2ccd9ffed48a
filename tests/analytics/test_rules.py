"""Every declared compliance rule: a passing case (the clean tree) and a failing case (the tree
altered for that rule), where the failing finding names the rule and carries its evidence."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlpower.analytics.check import check_run_dir
from mlpower.analytics.rules import RULES, RULES_BY_ID, CheckOptions

from .alterations import FAILURES, corrupt_row, edit_lines
from .trees import edit_json, rehash


def test_every_rule_has_a_failing_case() -> None:
    assert set(FAILURES) == set(RULES_BY_ID)


def test_clean_ptdaemon_tree_passes_every_rule(ptd_tree: Path, options: CheckOptions) -> None:
    report = check_run_dir(ptd_tree, options)
    assert [f.rule for f in report.findings] == [r.id for r in RULES]
    statuses = {f.rule: f.status for f in report.findings}
    assert statuses.pop("overrange") == "not_applicable"  # spl.txt carries no overrange flag
    assert statuses.pop("channel_imbalance") == "not_applicable"  # one analyzer
    assert set(statuses.values()) == {"pass"}, [f for f in report.findings if f.status != "pass"]
    assert report.verdict == "pass" and report.uses_ptdaemon


def test_direct_scpi_tree_reports_ptdaemon_checks_not_applicable(scpi_tree: Path, options: CheckOptions) -> None:
    report = check_run_dir(scpi_tree, options)
    not_applicable = {f.rule for f in report.findings if f.status == "not_applicable"}
    assert not_applicable == {r.id for r in RULES if r.ptdaemon} | {"channel_imbalance"}
    assert "one channel" in report.finding("channel_imbalance").message
    for rule in not_applicable - {"channel_imbalance"}:
        assert "PTDaemon" in report.finding(rule).message and "wt310e" in report.finding(rule).message
    assert {f.status for f in report.findings if f.rule not in not_applicable} == {"pass"}
    assert report.verdict == "pass" and not report.uses_ptdaemon
    assert report.finding("uncertainty").evidence["stream"] == "wt310e-1"  # from the run's own stream


@pytest.mark.parametrize("rule_id", list(FAILURES))
def test_rule_fails_on_its_violation(rule_id: str, ptd_tree: Path, scpi_tree: Path, options: CheckOptions) -> None:
    needs, alter, re_record, evidence_keys = FAILURES[rule_id]
    session = scpi_tree if needs == "docs" else ptd_tree
    alter(session)
    if re_record:
        rehash(session)
    finding = check_run_dir(session, options).finding(rule_id)
    assert finding.rule == rule_id and finding.status == "fail", finding
    assert finding.severity == RULES_BY_ID[rule_id].severity
    assert set(evidence_keys) <= set(finding.evidence), finding.evidence
    assert finding.message


def test_corrupt_row_names_file_and_line(ptd_tree: Path, options: CheckOptions) -> None:
    corrupt_row(ptd_tree, line=50)
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


def test_corrupt_document_row_names_file_and_line(scpi_tree: Path, options: CheckOptions) -> None:
    path = scpi_tree / "documents.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = lines[4][: len(lines[4]) // 2]
    path.write_text("\n".join(lines) + "\n")
    finding = check_run_dir(scpi_tree, options).finding("files_readable")
    assert finding.status == "fail" and "documents.jsonl:5:" in finding.message


def test_loadgen_markers_in_local_time_are_named_as_such(ptd_tree: Path, options: CheckOptions) -> None:
    """LoadGen on a SUT at UTC+2 writes its markers two hours ahead (power-dev-protocol.md §6.1)."""
    from .alterations import set_detail, window_of
    from .trees import stamp

    begin, end = window_of(ptd_tree)
    set_detail(ptd_tree, "power_begin", stamp(begin + 7200))
    set_detail(ptd_tree, "power_end", stamp(end + 7200))
    rehash(ptd_tree)
    finding = check_run_dir(ptd_tree, options).finding("loadgen_window_in_phases")
    assert finding.status == "fail" and finding.evidence["whole_hours_off"] == -2
    assert "not on UTC" in finding.message


def test_a_client_tree_without_its_client_files_is_still_the_clients(ptd_tree: Path, options: CheckOptions) -> None:
    """Deleting client.json and client.log does not make a submission look like the director's side
    of a session (where the client rules are not applicable): LoadGen's logs say whose tree it is."""
    (ptd_tree / "power" / "client.json").unlink()
    (ptd_tree / "power" / "client.log").unlink()
    report = check_run_dir(ptd_tree, options)
    assert report.kind == "powerdev" and report.verdict == "fail"
    for rule in ("uuid", "session_name", "client_server_messages", "results_checksum"):
        assert report.finding(rule).status == "fail", report.finding(rule)
    assert "power/client.json: missing" in report.finding("uuid").message


def test_a_declared_driver_does_not_override_the_files(scpi_tree: Path, options: CheckOptions) -> None:
    """A run stream that says "bus" cannot make a client's tree skip the client rules."""
    import json

    path = scpi_tree / "documents.jsonl"
    lines = path.read_text().splitlines()
    start = json.loads(lines[0])
    start["settings"] = {"driver": "bus", "workload": "builtin:offline"}
    path.write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    report = check_run_dir(scpi_tree, options)
    assert report.kind == "powerdev" and report.finding("uuid").status == "pass"
