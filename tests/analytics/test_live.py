"""The live checker as a pure state machine fed with pages."""

from __future__ import annotations

from mlpower.analytics.live import LiveChecker, clock_offset_in
from mlpower.schema import PhaseMark, SampleFlag, SamplePage


def page(seq: int, number: int, t: list[float], *, mode: str = "testing", power: float = 250.0,
         uncertainty: float = 0.6, flags: list[int] | None = None) -> SamplePage:
    n = len(t)
    return SamplePage(run_id="r", seq=seq, stream="s", page=number, mode=mode, t_utc_s=t, power_w=[power] * n,
                      voltage_v=[230.0] * n, current_a=[1.0] * n, power_factor=[1.0] * n,
                      voltage_range_v=[300.0] * n, current_range_a=[2.0] * n, uncertainty_w=[uncertainty] * n,
                      flags=flags or [0] * n)


def test_clean_pages_give_nothing() -> None:
    live = LiveChecker("r")
    assert live.feed(page(1, 0, [0.0, 1.0, 2.0])) == []
    assert live.feed(page(2, 1, [3.0, 4.0])) == []


def test_uncertainty_over_one_percent_in_testing_once_with_evidence() -> None:
    live = LiveChecker("r")
    (finding,) = live.feed(page(1, 0, [0.0, 1.0], power=20.0, uncertainty=0.4))
    assert finding.rule == "live_uncertainty" and finding.severity == "error"
    assert finding.evidence["relative"] == 0.02 and finding.evidence["t_utc_s"] == 0.0
    assert live.feed(page(2, 1, [2.0], power=20.0, uncertainty=0.4)) == []  # reported once per run


def test_ranging_tolerates_auto_range_uncertainty_and_overrange() -> None:
    live = LiveChecker("r")
    assert live.feed(page(1, 0, [0.0, 1.0], mode="ranging", power=20.0, uncertainty=0.4,
                          flags=[int(SampleFlag.OVERRANGE), 0])) == []


def test_overrange_gap_missing_and_lost_pages() -> None:
    live = LiveChecker("r")
    found = live.feed(page(1, 0, [0.0, 1.0, 5.0], flags=[0, int(SampleFlag.OVERRANGE), int(SampleFlag.MISSING)]))
    assert {f.rule for f in found} == {"live_overrange", "live_sample_gap", "live_missing_sample"}
    gap = next(f for f in found if f.rule == "live_sample_gap")
    assert gap.evidence["gap_s"] == 4.0
    lost = live.feed(page(2, 3, [6.0]))
    assert [f.rule for f in lost] == ["live_lost_pages"] and lost[0].evidence["first_missing_page"] == 1


def test_duplicates_are_idempotent_by_seq() -> None:
    live = LiveChecker("r")
    bad = page(7, 0, [0.0], power=20.0, uncertainty=0.4)
    assert len(live.feed(bad)) == 1
    fresh = LiveChecker("r", reported=set())
    fresh.feed(bad)
    assert fresh.feed(bad) == [] and len(fresh.findings) == 1


def test_clock_offset_from_marks_and_agent_detail() -> None:
    assert clock_offset_in("workload x; clock offset to director +512.0 ms (round trip 1.0 ms)") == 0.512
    assert clock_offset_in('{"clock_offset_s": -0.45}') == -0.45
    assert clock_offset_in("nothing") is None
    live = LiveChecker("r")
    ok = PhaseMark(run_id="r", seq=1, name="power_begin", t_utc_s=1.0, source="loadgen", detail="clock_offset_s=0.1")
    assert live.feed(ok) == []
    bad = PhaseMark(run_id="r", seq=2, name="power_end", t_utc_s=2.0, source="loadgen", detail="clock_offset_s=0.5")
    (finding,) = live.feed(bad)
    assert finding.rule == "live_clock_offset" and finding.evidence["clock_offset_s"] == 0.5
