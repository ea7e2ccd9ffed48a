"""Average power, energy and uncertainty against a known true load (constant and phases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlpower.analytics.energy import Samples, analyze_window, energy_sum_j, energy_trapezoid_j
from mlpower.analytics.errors import WindowError
from mlpower.analytics.loadgen import parse_detail
from mlpower.analytics.summary import analyze_documents, summarize_documents

from .streams import Synth

IDLE_W = 80.0


def constant(t: float) -> float:
    return IDLE_W if t < 30.0 else 250.0


def phases(t: float) -> float:
    """idle, then a ramp, a steady high phase and a lower phase inside the window."""
    if t < 30.0:
        return IDLE_W
    if t < 100.0:
        return 150.0 + (t - 30.0)  # ramp 150 -> 220 W
    return 300.0 if t < 400.0 else 200.0


@pytest.mark.parametrize("profile", [constant, phases], ids=["constant", "phases"])
@pytest.mark.parametrize("seed", range(4))
def test_average_within_stated_uncertainty_of_truth(profile, seed: int) -> None:  # type: ignore[no-untyped-def]
    synth = Synth(profile, seed=seed)
    summary = summarize_documents(synth.build())
    truth = synth.true_average_w()
    assert summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None
    assert abs(summary.avg_power_w - truth) <= summary.avg_power_uncertainty_w, (summary.avg_power_w, truth)
    assert summary.window_s == pytest.approx(600.0)
    # energy equals average power x window within the stated uncertainty, and both integrals agree
    u_energy = summary.avg_power_uncertainty_w * summary.window_s
    assert summary.energy_j == pytest.approx(summary.avg_power_w * summary.window_s, abs=u_energy)
    assert summary.energy_trapezoid_j == pytest.approx(summary.energy_j, abs=u_energy)
    assert abs(summary.energy_j - truth * synth.window_s) <= u_energy
    assert "submission checker" in summary.method and summary.source.startswith("power: simulator WT310E")


def test_idle_phase_gives_gross_and_net() -> None:
    synth = Synth(constant, seed=3)
    summary = summarize_documents(synth.build())
    assert summary.idle_power_w == pytest.approx(IDLE_W, abs=1.0)
    assert summary.net_avg_power_w == pytest.approx(summary.avg_power_w - summary.idle_power_w)


def test_overrange_samples_are_counted_not_averaged() -> None:
    synth = Synth(constant, seed=1, overrange_at=(100, 200, 300))
    analysis = analyze_documents(synth.build())
    s = analysis.summary
    assert s.flagged_samples_in_window == 3 and s.samples_in_window == 600
    assert s.avg_power_w == pytest.approx(250.0, abs=s.avg_power_uncertainty_w)  # 9999 W left out
    flagged = [f for f in analysis.findings if f.rule == "flagged_samples"]
    assert flagged and flagged[0].evidence["flagged"] == 3


def test_no_window_marks_is_a_finding_not_a_number() -> None:
    docs = [d for d in Synth(constant).build() if getattr(d, "name", "") not in ("power_begin", "power_end")]
    analysis = analyze_documents(docs)
    assert analysis.summary.avg_power_w is None and analysis.summary.energy_j is None
    assert analysis.findings[0].rule == "loadgen_window" and "no power_begin/power_end" in analysis.findings[0].message
    with pytest.raises(WindowError):
        summarize_documents(docs)


def test_duplicate_documents_change_nothing() -> None:
    docs = Synth(constant, seed=2).build()
    assert summarize_documents(docs + docs[5:20]) == summarize_documents(docs)


def test_samples_on_the_window_edges_are_excluded() -> None:
    samples = Samples.from_columns({"t_utc_s": [10.0, 11.0, 12.0], "power_w": [1000.0, 5.0, 1000.0]})
    result = analyze_window(samples, 10.0, 12.0)  # strictly inside, like the checker
    assert result.samples_in_window == 1 and result.avg_power_w == 5.0
    assert result.avg_power_uncertainty_w is None  # spl-like samples carry no uncertainty: unknown, not 0
    with pytest.raises(WindowError):
        analyze_window(samples, 12.0, 10.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=50), st.floats(0.05, 3.0))
def test_energy_sums_cover_the_window(powers: list[float], step_s: float) -> None:
    t = np.arange(len(powers)) * step_s + 0.3
    p = np.array(powers)
    begin, end = 0.0, float(t[-1] + 0.4)
    # a constant power gives exactly P x window; any power is bounded by min/max x window
    assert energy_sum_j(t, np.full_like(p, 7.0), begin, end) == pytest.approx(7.0 * end)
    for energy in (energy_sum_j(t, p, begin, end), energy_trapezoid_j(t, p, begin, end)):
        assert p.min() * end * (1 - 1e-9) <= energy <= p.max() * end * (1 + 1e-9)


def _detail(scenario: str, **values: object) -> str:
    import json
    lines = [{"key": "effective_scenario", "value": scenario}, *({"key": k, "value": v} for k, v in values.items())]
    return "\n".join(":::MLLOG " + json.dumps(line) for line in lines)


@pytest.mark.parametrize("scenario,values,unit,expected", [
    ("Offline", {"result_samples_per_second": 1000.0}, "samples/J", lambda p, w: 1000.0 / p),
    ("Server", {"result_completed_samples_per_sec": 500.0}, "samples/J", lambda p, w: 500.0 / p),
    ("SingleStream", {"result_90.00_percentile_latency_ns": 2e6, "result_query_count": 3000}, "mJ/query",
     lambda p, w: p * w * 1000 / 3000),
    ("MultiStream", {"result_99.00_percentile_per_query_latency_ns": 9e6, "result_query_count": 700}, "mJ/query",
     lambda p, w: p * w * 1000 / 700),
    ("Offline", {"result_samples_per_second": 10.0, "result_tokens_per_second": 2500.0}, "J/token",
     lambda p, w: p / 2500.0),
])
def test_efficiency_per_scenario(scenario: str, values: dict, unit: str, expected) -> None:  # type: ignore[no-untyped-def]
    synth = Synth(constant, seed=0, scenario=scenario)
    summary = summarize_documents(synth.build(), detail=parse_detail(_detail(scenario, **values)))
    assert summary.efficiency_unit == unit
    assert summary.efficiency == pytest.approx(expected(summary.avg_power_w, summary.window_s))
    assert summary.performance is not None and "mlperf_log_detail.txt" in summary.source
    assert not math.isnan(summary.efficiency)
