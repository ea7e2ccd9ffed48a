"""Average power, energy, coverage and uncertainty against a known true load (constant and phases)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlpower.analytics.coverage import COVERAGE_TOLERANCE, INNER_GAP_LIMIT_S, coverage
from mlpower.analytics.energy import analyze_window
from mlpower.analytics.errors import WindowError
from mlpower.analytics.findings import CheckOptions
from mlpower.analytics.rules import RULES_BY_ID, run_rule
from mlpower.analytics.summary import summarize
from mlpower.runview import RunView
from mlpower.samples import Samples, is_usable, usable_mask
from mlpower.schema import RunSummary, SampleFlag

from .streams import Synth

IDLE_W = 80.0


def summary_of(documents: list) -> RunSummary:  # type: ignore[type-arg]
    return summarize(RunView.from_documents(documents))


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
    summary = summary_of(synth.build())
    truth = synth.true_average_w()
    assert summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None
    assert abs(summary.avg_power_w - truth) <= summary.avg_power_uncertainty_w, (summary.avg_power_w, truth)
    assert summary.window_s == pytest.approx(600.0)
    # energy equals average power x window within the stated uncertainty, and both integrals agree
    u_energy = summary.avg_power_uncertainty_w * summary.window_s
    assert summary.energy_j == pytest.approx(summary.avg_power_w * summary.window_s, abs=u_energy)
    assert summary.energy_trapezoid_j == pytest.approx(summary.energy_j, abs=u_energy)
    assert abs(summary.energy_j - truth * synth.window_s) <= u_energy
    assert summary.coverage_ratio == pytest.approx(1.0) and summary.covered_s == pytest.approx(summary.window_s)
    assert "submission checker" in summary.method and summary.source.startswith("power: simulator WT310E")


def test_idle_phase_gives_gross_and_net() -> None:
    synth = Synth(constant, seed=3)
    summary = summary_of(synth.build())
    assert summary.idle_power_w == pytest.approx(IDLE_W, abs=1.0)
    assert summary.net_avg_power_w == pytest.approx(summary.avg_power_w - summary.idle_power_w)


def test_overrange_samples_are_counted_not_averaged() -> None:
    synth = Synth(constant, seed=1, overrange_at=(100, 200, 300))
    view = RunView.from_documents(synth.build())
    s = summarize(view)
    assert s.flagged_samples_in_window == 3 and s.samples_in_window == 600
    assert s.avg_power_w == pytest.approx(250.0, abs=s.avg_power_uncertainty_w)  # 9999 W left out
    flagged = run_rule(RULES_BY_ID["flagged_samples"], view, CheckOptions())
    assert flagged.status == "fail" and flagged.evidence["flagged"] == 3
    # the three flagged seconds are not measured time: energy is over the rest, and says so
    assert s.covered_s == pytest.approx(s.window_s - 3 * 1.0, abs=3 * COVERAGE_TOLERANCE)
    assert s.energy_j == pytest.approx(250.0 * s.covered_s, rel=0.01)


def test_no_window_marks_is_a_finding_not_a_number() -> None:
    docs = [d for d in Synth(constant).build() if getattr(d, "name", "") not in ("power_begin", "power_end")]
    view = RunView.from_documents(docs)
    summary = summarize(view)
    assert summary.avg_power_w is None and summary.energy_j is None and summary.coverage_ratio is None
    finding = run_rule(RULES_BY_ID["samples_in_window"], view, CheckOptions())
    assert finding.status == "fail" and "no LoadGen power window" in finding.message


def test_duplicate_documents_change_nothing() -> None:
    docs = Synth(constant, seed=2).build()
    assert summary_of(docs + docs[5:20]) == summary_of(docs)


def test_samples_on_the_window_edges_are_excluded() -> None:
    samples = Samples.from_columns({"t_utc_s": [10.0, 11.0, 12.0], "power_w": [1000.0, 5.0, 1000.0]})
    result = analyze_window(samples, 10.0, 12.0, 1.0)  # strictly inside, like the checker
    assert result.samples_in_window == 1 and result.avg_power_w == 5.0
    assert result.avg_power_uncertainty_w is None  # spl-like samples carry no uncertainty: unknown, not 0
    with pytest.raises(WindowError):
        analyze_window(samples, 12.0, 10.0, 1.0)


def test_usable_is_one_definition_for_arrays_and_single_samples() -> None:
    power = [250.0, 0.0, -1.0, math.nan, 250.0, 250.0, None]
    flags = [0, 0, 0, 0, int(SampleFlag.OVERRANGE), int(SampleFlag.MISSING), 0]
    mask = usable_mask(np.array([math.nan if p is None else p for p in power]), np.array(flags))
    assert mask.tolist() == [True, False, False, False, False, False, False]
    assert [is_usable(p, f) for p, f in zip(power, flags, strict=True)] == mask.tolist()
    assert is_usable(5.0, int(SampleFlag.RANGE_CHANGE | SampleFlag.AUTO_RANGE))  # informative bits only


def regular(begin: float, end: float, step: float, power: float = 100.0, offset: float = 0.5) -> Samples:
    t = np.arange(begin - 2 * step + offset * step, end + 2 * step, step)
    return Samples.from_columns({"t_utc_s": t.tolist(), "power_w": [power] * t.size})


def test_complete_record_covers_the_whole_window() -> None:
    found = coverage(regular(0.0, 52.0, 1.0), 0.0, 52.0, 1.0)
    assert found.covered_s == pytest.approx(52.0) and found.complete and not found.uncovered
    assert found.energy_j == pytest.approx(100.0 * 52.0) and found.energy_trapezoid_j == pytest.approx(5200.0)


def test_window_tail_takes_the_last_inside_samples_power() -> None:
    """The sample after power_end covers the window's end, but it also saw the idle after LoadGen:
    the tail is integrated at the last inside sample's power, as the checker's average would."""
    t = np.arange(0.5, 11.0, 1.0)
    p = np.where(t < 10.0, 100.0, 20.0)
    found = coverage(Samples.from_columns({"t_utc_s": t.tolist(), "power_w": p.tolist()}), 0.0, 10.0, 1.0)
    assert found.covered_s == pytest.approx(10.0) and found.tail_gap_s == pytest.approx(0.5)
    assert found.energy_j == pytest.approx(1000.0) and found.energy_trapezoid_j == pytest.approx(1000.0)


def test_last_forty_percent_cut_covers_sixty_percent_and_names_the_tail() -> None:
    samples = regular(0.0, 52.0, 1.0)
    kept = samples.t_utc_s < 0.6 * 52.0
    cut = Samples(samples.t_utc_s[kept], samples.power_w[kept], samples.uncertainty_w[kept], samples.flags[kept])
    found = coverage(cut, 0.0, 52.0, 1.0)
    assert found.covered_s == pytest.approx(30.5) and not found.complete  # the last sample at 30.5 s
    assert found.energy_j == pytest.approx(100.0 * found.covered_s)  # never average x the whole window
    (tail,) = found.uncovered
    assert tail.begin_utc_s == pytest.approx(30.5) and tail.end_utc_s == 52.0
    assert found.tail_gap_s == pytest.approx(21.5) and found.evidence()["uncovered"][0]["seconds"] == 21.5


def test_inner_gap_and_flagged_samples_are_uncovered_time() -> None:
    samples = regular(0.0, 30.0, 1.0)
    keep = ~((samples.t_utc_s > 10.0) & (samples.t_utc_s < 13.0))  # 10.5, 11.5, 12.5 lost: 4 s between samples
    flags = samples.flags.copy()
    flags[np.flatnonzero(np.isclose(samples.t_utc_s, 20.5))] = int(SampleFlag.MISSING)
    holed = Samples(samples.t_utc_s[keep], samples.power_w[keep], samples.uncertainty_w[keep], flags[keep])
    found = coverage(holed, 0.0, 30.0, 1.0)
    (gap,) = found.inner_gaps
    assert (gap.begin_utc_s, gap.end_utc_s) == (9.5, 13.5) and gap.seconds > INNER_GAP_LIMIT_S
    # 13.5 stands for at most 1 s + tolerance back; the missing 20.5 stands for nothing, and 21.5 only
    # for the time since it (a sample stands for the time since the sample before it, usable or not)
    tolerance = COVERAGE_TOLERANCE * 1.0
    assert [round(s.seconds, 6) for s in found.uncovered] == [round(4.0 - 1.0 - tolerance, 6), 1.0]
    assert found.covered_s == pytest.approx(30.0 - (4.0 - 1.0 - tolerance) - 1.0)


def test_head_edge_counts() -> None:
    samples = regular(0.0, 20.0, 1.0)
    late = samples.t_utc_s > 3.0  # the first sample inside at 3.5 s: 3.5 s after power_begin
    found = coverage(Samples(samples.t_utc_s[late], samples.power_w[late], samples.uncertainty_w[late],
                             samples.flags[late]), 0.0, 20.0, 1.0)
    assert found.head_gap_s == pytest.approx(3.5)
    assert found.uncovered[0].begin_utc_s == 0.0 and found.uncovered[0].seconds == pytest.approx(3.5 - 1.25)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=50), st.floats(0.05, 3.0), st.floats(0.1, 2.0),
       st.lists(st.integers(0, 49), max_size=10))
def test_coverage_and_energy_bounds(powers: list[float], step_s: float, interval_s: float, drop: list[int]) -> None:
    t = np.arange(len(powers)) * step_s + 0.3
    p = np.array(powers)
    begin, end = 0.0, float(t[-1] + 0.4)
    samples = Samples.from_columns({"t_utc_s": t.tolist(), "power_w": p.tolist()})
    found = coverage(samples, begin, end, interval_s)
    assert 0.0 <= found.covered_s <= end - begin + 1e-9
    assert found.covered_s + sum(s.seconds for s in found.uncovered) == pytest.approx(end - begin)
    # a constant power gives exactly P x covered time; any power is bounded by min/max x covered time
    constant_found = coverage(Samples.from_columns({"t_utc_s": t.tolist(), "power_w": [7.0] * t.size}), begin,
                              end, interval_s)
    assert constant_found.energy_j == pytest.approx(7.0 * constant_found.covered_s)
    for energy in (found.energy_j, found.energy_trapezoid_j):
        assert energy is not None
        assert p.min() * found.covered_s * (1 - 1e-9) <= energy <= p.max() * found.covered_s * (1 + 1e-9)
    # losing samples never adds covered time
    keep = np.ones(t.size, dtype=bool)
    keep[[i for i in drop if i < t.size]] = False
    fewer = coverage(Samples(t[keep], p[keep], samples.uncertainty_w[keep], samples.flags[keep]), begin, end,
                     interval_s)
    assert fewer.covered_s <= found.covered_s + 1e-9


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
def test_efficiency_per_scenario(scenario: str, values: dict, unit: str, expected, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # bus mode: the agent's power_end event names its LoadGen detail log, which supplies performance
    log = tmp_path / "run_1" / "mlperf_log_detail.txt"
    log.parent.mkdir()
    log.write_text(_detail(scenario, **values))
    synth = Synth(constant, seed=0, scenario=scenario, power_end_detail=str(log))
    summary = summary_of(synth.build())
    assert summary.efficiency_unit == unit
    assert summary.efficiency == pytest.approx(expected(summary.avg_power_w, summary.window_s))
    assert summary.performance is not None and "mlperf_log_detail.txt" in summary.source
    assert not math.isnan(summary.efficiency)
