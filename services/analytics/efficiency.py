"""Scenario -> performance and efficiency metric, as one declared table (pure).

Offline and Server: samples per joule (throughput / average power); SingleStream and
MultiStream: millijoules per query (average power x window x 1000 / result_query_count, the
submission checker's energy metric, power-dev-protocol.md §6.2); a workload that reports tokens
gets joules per token (average power / tokens per second) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Performance:
    value: float | None
    unit: str
    source: str
    query_count: int | None = None
    tokens_per_s: float | None = None


@dataclass(frozen=True)
class Efficiency:
    value: float | None
    unit: str


@dataclass(frozen=True)
class ScenarioMetric:
    detail_keys: tuple[str, ...]  # LoadGen detail-log keys for the performance result, first found wins
    summary_keys: tuple[str, ...]  # the same figure in mlperf_log_summary.txt
    performance_unit: str
    efficiency_unit: str
    efficiency: Callable[[float, float, Performance], float | None]  # (avg W, window s, perf) -> value


def _per_joule(avg_power_w: float, _window_s: float, perf: Performance) -> float | None:
    return perf.value / avg_power_w if perf.value is not None and avg_power_w > 0 else None


def _mj_per_query(avg_power_w: float, window_s: float, perf: Performance) -> float | None:
    if not perf.query_count:
        return None
    return avg_power_w * window_s * 1000.0 / perf.query_count


SCENARIOS: dict[str, ScenarioMetric] = {
    "Offline": ScenarioMetric(("result_samples_per_second",), ("Samples per second",), "samples/s", "samples/J",
                              _per_joule),
    "Server": ScenarioMetric(("result_completed_samples_per_sec", "result_scheduled_samples_per_sec"),
                             ("Completed samples per second", "Scheduled samples per second"), "samples/s",
                             "samples/J", _per_joule),
    "SingleStream": ScenarioMetric(("result_90.00_percentile_latency_ns",),
                                   ("90th percentile latency (ns)", "90.00 percentile latency (ns)"), "ns",
                                   "mJ/query", _mj_per_query),
    "MultiStream": ScenarioMetric(("result_99.00_percentile_per_query_latency_ns",
                                   "result_99.00_percentile_latency_ns"),
                                  ("99th percentile latency (ns)", "99.00 percentile latency (ns)"), "ns",
                                  "mJ/query", _mj_per_query),
}
TOKEN_DETAIL_KEYS = ("result_completed_tokens_per_second", "result_tokens_per_second")
TOKEN_SUMMARY_KEYS = ("Completed tokens per second", "Tokens per second")


def _number(value: Any) -> float | None:
    try:
        return float(str(value).replace(",", ""))
    except (TypeError, ValueError):
        return None


def _first(values: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[float | None, str]:
    for key in keys:
        number = _number(values.get(key)) if key in values else None
        if number is not None:
            return number, key
    return None, ""


def performance(scenario: str, detail: Mapping[str, Any], summary: Mapping[str, str]) -> Performance:
    """The scenario's performance result, from the detail log, else from the summary."""
    metric = SCENARIOS.get(scenario)
    tokens, _ = _first(detail, TOKEN_DETAIL_KEYS)
    if tokens is None:
        tokens, _ = _first(summary, TOKEN_SUMMARY_KEYS)
    query_count = _number(detail.get("result_query_count"))
    count = int(query_count) if query_count is not None else None
    if metric is None:
        return Performance(None, "", f"unknown scenario {scenario!r}", count, tokens)
    value, key = _first(detail, metric.detail_keys)
    source = f"loadgen mlperf_log_detail.txt:{key}"
    if value is None:
        value, key = _first(summary, metric.summary_keys)
        source = f"loadgen mlperf_log_summary.txt:{key}" if value is not None else "loadgen: no performance result"
    return Performance(value, metric.performance_unit, source, count, tokens)


def efficiency(scenario: str, avg_power_w: float | None, window_s: float | None, perf: Performance) -> Efficiency:
    metric = SCENARIOS.get(scenario)
    if metric is None or avg_power_w is None or window_s is None:
        return Efficiency(None, metric.efficiency_unit if metric else "")
    if perf.tokens_per_s and scenario in ("Offline", "Server"):
        return Efficiency(avg_power_w / perf.tokens_per_s, "J/token")
    return Efficiency(metric.efficiency(avg_power_w, window_s, perf), metric.efficiency_unit)
