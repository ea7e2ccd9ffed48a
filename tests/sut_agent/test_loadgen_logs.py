"""The LoadGen log reader: power-dev's marker rule, UTC parsing, results, clear errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from mlpower.ptdformat import format_ptd_time
from mlpower.sut_agent.errors import LoadGenLogError
from mlpower.sut_agent.loadgen_logs import find_run_logs, parse_logs, power_window, read_result


def mllog(key: str, value: object) -> str:
    return ":::MLLOG " + json.dumps({"key": key, "value": value, "time_ms": 1.0, "namespace": "mlperf::logging",
                                     "event_type": "POINT_IN_TIME", "metadata": {}})


def marker(t: dt.datetime) -> str:
    return format_ptd_time(t.timestamp())


def write_logs(folder: Path, begin: dt.datetime, end: dt.datetime, *, markers: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [mllog("effective_scenario", "Offline"), mllog("effective_min_duration_ms", 600000)]
    if markers:
        lines += [mllog("power_begin", marker(begin)), mllog("power_end", marker(end))]
    lines += [mllog("result_validity", "VALID"), mllog("result_samples_per_second", 123.5),
              mllog("result_query_count", 1)]
    (folder / "mlperf_log_detail.txt").write_text("\n".join(lines) + "\n")
    (folder / "mlperf_log_summary.txt").write_text("Scenario : Offline\nResult is : VALID\n")
    return folder


def test_markers_are_read_as_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    begin = dt.datetime(2026, 3, 8, 6, 59, 59, 250000, tzinfo=dt.UTC)  # a DST change day in New York
    text = "\n".join([mllog("power_begin", marker(begin)), mllog("power_end", marker(begin + dt.timedelta(seconds=2)))])
    window = power_window(text, "x")
    assert window.begin_utc_s == pytest.approx(begin.timestamp())
    assert window.duration_s == pytest.approx(2.0)


def test_old_format_and_first_line_rule() -> None:
    text = ('POWER_BEGIN: "time": 01-02-2026 03:04:05.600\n'
            'POWER_END: 01-02-2026 03:04:09.100\npower_end: 01-02-2026 09:00:00.000')
    window = power_window(text, "old.txt")
    assert window.duration_s == pytest.approx(3.5)


def test_result_fields_come_from_the_logs(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    result = read_result(write_logs(tmp_path / "a", now, now + dt.timedelta(seconds=5)))
    assert (result.scenario, result.validity, result.metric_value, result.metric_unit) == (
        "Offline", "VALID", 123.5, "samples/s")
    assert result.min_duration_ms == 600000 and result.query_count == 1


def test_missing_markers_name_the_file(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    folder = write_logs(tmp_path / "run", now, now, markers=False)
    with pytest.raises(LoadGenLogError, match=r"run/mlperf_log_detail\.txt.*power_begin and power_end"):
        read_result(folder)
    with pytest.raises(LoadGenLogError, match=r"mlperf_log_detail\.txt.*power_begin and power_end"):
        find_run_logs(tmp_path, now.timestamp() - 10, now.timestamp() + 10)


def test_a_missing_summary_is_named(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    folder = write_logs(tmp_path / "run", now, now + dt.timedelta(seconds=1))
    (folder / "mlperf_log_summary.txt").unlink()
    with pytest.raises(LoadGenLogError, match="mlperf_log_summary.txt"):
        read_result(folder)


def test_search_takes_the_log_inside_the_workload_interval(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    write_logs(tmp_path / "a_stale", now - dt.timedelta(hours=1), now - dt.timedelta(minutes=59))
    write_logs(tmp_path / "b_fresh", now, now + dt.timedelta(seconds=3))
    found = find_run_logs(tmp_path, now.timestamp() - 1, now.timestamp() + 4)
    assert found.detail_path.parent.name == "b_fresh"
    with pytest.raises(LoadGenLogError, match="outside the workload's run"):
        find_run_logs(tmp_path, now.timestamp() + 10, now.timestamp() + 20)


def test_an_empty_folder_gives_upstreams_message(tmp_path: Path) -> None:
    with pytest.raises(LoadGenLogError, match="Expected '.*' to be a directory containing loadgen logs"):
        find_run_logs(tmp_path, 0, 1)


def test_truncated_mllog_lines_are_skipped() -> None:
    text = mllog("effective_scenario", "Server") + "\n:::MLLOG {\"key\": \"resu\n" + "\n".join(
        [mllog("power_begin", "01-01-2026 00:00:00.000"), mllog("power_end", "01-01-2026 00:00:01.000"),
         mllog("result_completed_samples_per_sec", 9.5)])
    result = parse_logs(text, "Result is : INVALID\n", Path("d"))
    assert (result.scenario, result.metric_value, result.validity) == ("Server", 9.5, "INVALID")
