"""Reading LoadGen's detail and summary logs: the power window and the result (pure, plus file reads).

The power markers follow power-dev's rule (power-dev-protocol.md §4.5): the first line that
contains ``power_begin`` (resp. ``power_end``), case-insensitive, searched for the first
``\\d*-\\d*-\\d* \\d*:\\d*:\\d*\\.\\d*``, parsed as ``%m-%d-%Y %H:%M:%S.%f`` **in UTC** (§6.1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mlpower.ptdformat import parse_ptd_time
from mlpower.sut_agent.errors import LoadGenLogError

DETAIL_NAME = "mlperf_log_detail.txt"
SUMMARY_NAME = "mlperf_log_summary.txt"
MARKER_TIME = re.compile(r"\d*-\d*-\d* \d*:\d*:\d*\.\d*")
MLLOG_PREFIX = ":::MLLOG "
SUMMARY_VALIDITY = re.compile(r"^Result is\s*:\s*(\S+)", re.MULTILINE)

# The headline metric of each scenario: (detail-log key, unit). SingleStream reports the 90th
# percentile latency; throughput scenarios report samples per second.
SCENARIO_METRICS: dict[str, tuple[str, str]] = {
    "Offline": ("result_samples_per_second", "samples/s"),
    "Server": ("result_completed_samples_per_sec", "samples/s"),
    "SingleStream": ("result_90.00_percentile_latency_ns", "ns"),
    "MultiStream": ("result_99.00_percentile_per_query_latency_ns", "ns"),
}


@dataclass(frozen=True)
class PowerWindow:
    begin_utc_s: float
    end_utc_s: float

    @property
    def duration_s(self) -> float:
        return self.end_utc_s - self.begin_utc_s


@dataclass(frozen=True)
class LoadGenResult:
    """What one LoadGen run reported: its power window and its headline result."""

    detail_path: Path
    window: PowerWindow
    scenario: str
    validity: str  # "VALID", "INVALID", or "" when the log does not say
    metric_key: str
    metric_value: float | None
    metric_unit: str
    query_count: int | None
    min_duration_ms: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "validity": self.validity,
            "metric": self.metric_key,
            "value": self.metric_value,
            "unit": self.metric_unit,
            "query_count": self.query_count,
            "min_duration_ms": self.min_duration_ms,
            "power_begin_utc_s": self.window.begin_utc_s,
            "power_end_utc_s": self.window.end_utc_s,
        }


def _marker(lines: list[str], key: str) -> float | None:
    for line in lines:
        if key in line.lower():
            found = MARKER_TIME.search(line)
            if found is None:
                return None
            try:
                return parse_ptd_time(found.group(0))  # UTC, as power-dev's client and checker read it
            except ValueError:
                return None
    return None


def power_window(detail_text: str, source: str) -> PowerWindow:
    """The power window of a detail log; ``source`` names the file in the error."""
    lines = detail_text.splitlines()
    begin, end = _marker(lines, "power_begin"), _marker(lines, "power_end")
    missing = [name for name, value in (("power_begin", begin), ("power_end", end)) if value is None]
    if missing or begin is None or end is None:
        raise LoadGenLogError(f"{source}: no readable {' and '.join(missing)} marker in the LoadGen detail log")
    if end < begin:
        raise LoadGenLogError(f"{source}: power_end precedes power_begin")
    return PowerWindow(begin, end)


def mllog_values(detail_text: str) -> dict[str, object]:
    """Every ``:::MLLOG`` key with its first value (later repeats are ignored, as power-dev does)."""
    values: dict[str, object] = {}
    for line in detail_text.splitlines():
        if not line.startswith(MLLOG_PREFIX):
            continue
        try:
            record = json.loads(line[len(MLLOG_PREFIX):])
        except json.JSONDecodeError:
            continue  # a truncated line (a killed run) must not hide the lines around it
        if isinstance(record, dict) and "key" in record:
            values.setdefault(str(record["key"]), record.get("value"))
    return values


def summary_validity(summary_text: str) -> str:
    found = SUMMARY_VALIDITY.search(summary_text)
    return found.group(1) if found else ""


def mllog_number(value: object) -> float | None:
    """An MLLOG value as a number (None for text, a bool or a missing key)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_logs(detail_text: str, summary_text: str, detail_path: Path) -> LoadGenResult:
    window = power_window(detail_text, str(detail_path))
    values = mllog_values(detail_text)
    scenario = str(values.get("effective_scenario", ""))
    metric_key, unit = SCENARIO_METRICS.get(scenario, ("", ""))
    count = mllog_number(values.get("result_query_count"))
    min_duration = mllog_number(values.get("effective_min_duration_ms"))
    return LoadGenResult(
        detail_path=detail_path,
        window=window,
        scenario=scenario,
        validity=summary_validity(summary_text) or str(values.get("result_validity", "")),
        metric_key=metric_key,
        metric_value=mllog_number(values.get(metric_key)) if metric_key else None,
        metric_unit=unit,
        query_count=int(count) if count is not None else None,
        min_duration_ms=int(min_duration) if min_duration is not None else None,
    )


def read_result(log_dir: Path) -> LoadGenResult:
    """Parse the detail and summary logs of one LoadGen run folder."""
    detail, summary = log_dir / DETAIL_NAME, log_dir / SUMMARY_NAME
    if not detail.is_file():
        raise LoadGenLogError(f"{detail}: LoadGen detail log not found")
    if not summary.is_file():
        raise LoadGenLogError(f"{summary}: LoadGen summary log not found next to {detail.name}")
    return parse_logs(
        detail.read_text(encoding="utf-8", errors="replace"),
        summary.read_text(encoding="utf-8", errors="replace"),
        detail,
    )


def find_run_logs(in_dir: Path, workload_start_utc_s: float, workload_end_utc_s: float) -> LoadGenResult:
    """power-dev's search (§2.6 step 6): the first detail log under ``in_dir`` whose window lies
    strictly inside the workload's wall-clock interval."""
    candidates = sorted(in_dir.rglob(DETAIL_NAME)) if in_dir.is_dir() else []
    if not candidates:
        raise LoadGenLogError(f"Expected '{in_dir}' to be a directory containing loadgen logs (no {DETAIL_NAME})")
    problems: list[str] = []
    for detail in candidates:
        try:
            window = power_window(detail.read_text(encoding="utf-8", errors="replace"), str(detail))
        except LoadGenLogError as exc:
            problems.append(str(exc))
            continue
        if workload_start_utc_s < window.begin_utc_s and window.end_utc_s < workload_end_utc_s:
            return read_result(detail.parent)
        problems.append(f"{detail}: power window outside the workload's run (is LoadGen running with TZ=UTC?)")
    raise LoadGenLogError(f"Expected '{in_dir}' to be a directory containing loadgen logs: " + "; ".join(problems))
