"""The live checker as a pure state machine fed with documents: the live rules of the one table
over the run so far, plus lost pages and clock offsets."""

from __future__ import annotations

from mlpower.analytics.findings import CheckOptions
from mlpower.analytics.live import LIVE_SEVERITIES, LiveChecker
from mlpower.analytics.rules import LIVE_RULES, RULES_BY_ID, evaluate
from mlpower.analytics.sample_checks import clock_offset_in
from mlpower.runview import RunView
from mlpower.schema import PhaseMark, RunDocument, SampleFlag, SamplePage, SourceInfo, StreamDescriptor

from .streams import Synth


def descriptor(seq: int = 0) -> StreamDescriptor:
    return StreamDescriptor(run_id="r", seq=seq, stream="s", source=SourceInfo(kind="wt310e"), sample_interval_s=1.0)


def mark(seq: int, name: str, t: float, source: str = "loadgen", detail: str = "") -> PhaseMark:
    return PhaseMark(run_id="r", seq=seq, name=name, mode="testing", t_utc_s=t, source=source, detail=detail)  # type: ignore[arg-type]


def page(seq: int, number: int, t: list[float], *, mode: str = "testing", power: float = 250.0,
         uncertainty: float = 0.6, flags: list[int] | None = None) -> SamplePage:
    n = len(t)
    return SamplePage(run_id="r", seq=seq, stream="s", page=number, mode=mode, t_utc_s=t, power_w=[power] * n,  # type: ignore[arg-type]
                      voltage_v=[230.0] * n, current_a=[1.0] * n, power_factor=[1.0] * n,
                      voltage_range_v=[300.0] * n, current_range_a=[2.0] * n, uncertainty_w=[uncertainty] * n,
                      flags=flags or [0] * n)


def fed(*documents: RunDocument) -> tuple[LiveChecker, list]:  # type: ignore[type-arg]
    live = LiveChecker("r")
    found = []
    for document in documents:
        found += live.feed(document)
    return live, found


def test_clean_pages_give_nothing() -> None:
    _, found = fed(descriptor(), mark(1, "power_begin", -0.5), page(2, 0, [0.0, 1.0, 2.0]), page(3, 1, [3.0, 4.0]))
    assert found == []


def test_uncertainty_over_one_percent_in_the_window_once_with_evidence() -> None:
    live, found = fed(descriptor(), mark(1, "power_begin", -0.5), page(2, 0, [0.0, 1.0], power=20.0, uncertainty=0.4))
    (finding,) = found
    assert finding.rule == "uncertainty" and finding.severity == RULES_BY_ID["uncertainty"].severity == "error"
    assert finding.evidence["max_relative"] == 0.02 and finding.evidence["first_t_utc_s"] == 0.0
    assert "open" in finding.evidence["window_source"]  # the window so far: power_end has not come yet
    assert live.feed(page(3, 1, [2.0], power=20.0, uncertainty=0.4)) == []  # reported once per run


def test_without_a_loadgen_window_the_testing_phase_is_judged() -> None:
    _, found = fed(descriptor(), mark(1, "testing_begin", -0.5, source="director"),
                   page(2, 0, [0.0, 1.0], power=20.0, uncertainty=0.4))
    assert [f.rule for f in found] == ["uncertainty"]
    assert "testing phase" in found[0].evidence["window_source"]


def test_ranging_before_the_window_is_not_judged() -> None:
    _, found = fed(descriptor(), page(1, 0, [0.0, 1.0], mode="ranging", power=20.0, uncertainty=0.4,
                                      flags=[int(SampleFlag.OVERRANGE), 0]))
    assert found == []


def test_overrange_gap_and_missing_samples_are_the_table_rules() -> None:
    flags = [0, int(SampleFlag.OVERRANGE), int(SampleFlag.MISSING), 0]
    live, found = fed(descriptor(), mark(1, "power_begin", -0.5), page(2, 0, [0.0, 1.0, 5.0, 6.0], flags=flags))
    assert {f.rule for f in found} == {"overrange", "coverage", "flagged_samples"}
    gap = next(f for f in found if f.rule == "coverage")
    assert gap.evidence["inner_gaps"] == [{"begin_utc_s": 0.0, "end_utc_s": 6.0, "seconds": 6.0}]
    lost = live.feed(page(3, 3, [7.0]))
    assert [f.rule for f in lost] == ["live_lost_pages"] and lost[0].evidence["first_missing_page"] == 1


def test_live_coverage_is_the_rule_after_the_run() -> None:
    """The finding raised while the run goes on is the coverage rule's, and the same rule fails
    on the finished run: one rule, two moments."""
    docs = Synth(lambda t: 250.0, window_s=60.0, page_rows=5).build()
    holed = []
    for d in docs:
        if isinstance(d, SamplePage):
            keep = [i for i, t in enumerate(d.t_utc_s) if not (40.0 < t - docs[0].t_utc_s < 44.0)]  # type: ignore[attr-defined]
            d = d.model_copy(update={c: [getattr(d, c)[i] for i in keep] for c in
                                     ("t_utc_s", "power_w", "voltage_v", "current_a", "power_factor",
                                      "voltage_range_v", "current_range_a", "uncertainty_w", "flags")})
        holed.append(d)
    live = LiveChecker("synth")
    first = None
    for index, document in enumerate(holed):
        if any(f.rule == "coverage" for f in live.feed(document)) and first is None:
            first = index
    assert first is not None and first < len(holed) - 3  # before power_end and run.stop
    after = {f.rule: f for f in evaluate(RunView.from_documents(holed))}["coverage"]
    assert after.status == "fail" and after.evidence["inner_gap_count"] == 1
    during = next(f for f in live.findings if f.rule == "coverage")
    assert during.evidence["inner_gaps"] == after.evidence["inner_gaps"]


def test_duplicates_are_idempotent_by_seq() -> None:
    live = LiveChecker("r")
    live.feed(descriptor())
    live.feed(mark(1, "power_begin", -0.5))
    bad = page(7, 0, [0.0], power=20.0, uncertainty=0.4)
    assert len(live.feed(bad)) == 1
    assert live.feed(bad) == [] and len(live.findings) == 1


def test_clock_offset_from_marks_and_agent_detail() -> None:
    assert clock_offset_in("workload x; clock offset to director +512.0 ms (round trip 1.0 ms)") == 0.512
    assert clock_offset_in('{"clock_offset_s": -0.45}') == -0.45
    assert clock_offset_in("nothing") is None
    live = LiveChecker("r")
    assert live.feed(mark(1, "power_begin", 1.0, detail="clock_offset_s=0.1")) == []
    (finding,) = live.feed(mark(2, "power_end", 2.0, detail="clock_offset_s=0.5"))
    assert finding.rule == "live_clock_offset" and finding.evidence["clock_offset_s"] == 0.5


def test_metrics_know_every_live_rule_with_its_table_severity() -> None:
    assert {r.id for r in LIVE_RULES} == {"coverage", "uncertainty", "overrange", "sample_interval", "flagged_samples"}
    for rule in LIVE_RULES:
        assert LIVE_SEVERITIES[rule.id] == rule.severity
    assert CheckOptions().live is False


def test_a_failure_after_clean_pages_shows_on_the_page_that_brings_it() -> None:
    """Clean pages are judged once per every_s; a page holding something a rule can fail on is
    judged at once (the screen decides when, the rules decide what)."""
    for bad, rule in (({"power": 20.0, "uncertainty": 0.4}, "uncertainty"),
                      ({"flags": [int(SampleFlag.OVERRANGE)]}, "overrange")):
        live, _ = fed(descriptor(), mark(1, "power_begin", -0.5), *(page(2 + i, i, [float(i)]) for i in range(15)))
        assert live.findings == []
        assert rule in [f.rule for f in live.feed(page(20, 15, [15.0], **bad))]  # type: ignore[arg-type]
    live, _ = fed(descriptor(), mark(1, "power_begin", -0.5), *(page(2 + i, i, [float(i)]) for i in range(15)))
    assert [f.rule for f in live.feed(page(20, 15, [19.0]))] == ["coverage"]  # a 5 s gap from the page before


def test_the_median_interval_is_judged_every_every_s_of_stream_time() -> None:
    live = LiveChecker("r", every_s=10.0)
    live.feed(descriptor())
    live.feed(mark(1, "power_begin", -0.5))
    found = []
    for i in range(40):  # 0.5 s apart: every page is clean (a step under the interval), the median is wrong
        found += [(f.rule, i) for f in live.feed(page(2 + i, i, [i * 0.5]))]
    assert found == [("sample_interval", 0)] or found[0][0] == "sample_interval" and found[0][1] <= 20
