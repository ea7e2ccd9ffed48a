"""Live analytics takes shortcuts for speed: it judges a page only when its screen says a rule could
fail on it, and the service judges a finished run on the live view instead of one built again from
the documents. Both must change nothing but the cost. These tests hold them to the plain way on
random runs (seeded, so every run of the suite sees the same ones) with jitter, gaps, missing,
overrange and non-positive samples, uncertainties over 1 % or unknown, and pages out of order."""

from __future__ import annotations

import numpy as np
import pytest
from mlpower.analytics.findings import CheckOptions
from mlpower.analytics.live import SCREENED_RULES, LiveChecker
from mlpower.analytics.rules import LIVE_RULES, evaluate, evaluate_live
from mlpower.analytics.service import stream_view
from mlpower.analytics.summary import summarize
from mlpower.runstream import RunStream
from mlpower.runview import RunView
from mlpower.schema import Finding, PhaseMark, RunDocument, SampleFlag, SamplePage, SourceInfo

T0_UTC_S = 1_795_891_000.0
SEEDS = range(200)


def random_run(seed: int) -> list[RunDocument]:
    """One run's documents as they arrive: marks after the page that carries their time (as the
    director's pages and LoadGen's marks interleave), sometimes two pages swapped."""
    rng = np.random.default_rng(seed)
    # 2 s: the screen's step limit meets the 2 s gap rule; 0.1 and 0.5 s: the 1 Hz rule fails
    interval_s = float(rng.choice([0.1, 0.5, 1.0, 1.0, 1.0, 2.0]))
    n = int(rng.integers(8, 160))
    steps = interval_s * (1 + rng.normal(0, 0.04, n))
    gaps = rng.random(n) < rng.choice([0.0, 0.0, 0.01, 0.05])
    steps[gaps] *= rng.uniform(1.3, 5.0, int(gaps.sum()))
    times = T0_UTC_S + 1.0 + np.cumsum(steps)
    power: list[float | None] = list(200.0 + rng.normal(0, 2, n))
    uncertainty: list[float | None] = [0.004 * p for p in power]  # type: ignore[operator]
    flags = [0] * n
    odd = rng.choice([0.0, 0.0, 0.01, 0.05])
    for i in range(n):
        kind = rng.random()
        if rng.random() >= odd:
            continue
        if kind < 0.25:
            power[i], uncertainty[i], flags[i] = None, None, int(SampleFlag.MISSING)
        elif kind < 0.45:
            flags[i] = int(SampleFlag.OVERRANGE)
        elif kind < 0.6:
            power[i] = float(rng.choice([0.0, -1.0]))
        elif kind < 0.8:
            uncertainty[i] = 0.02 * float(power[i])  # type: ignore[arg-type]
        else:
            uncertainty[i] = None
    begin_at = int(rng.integers(0, max(1, n // 4)))
    end_at = int(rng.integers(max(begin_at + 1, 3 * n // 4), n))
    begin_utc_s = float(times[begin_at] - rng.uniform(0.01, 0.9) * interval_s)
    end_utc_s = float(times[end_at] - rng.uniform(0.01, 0.9) * interval_s)

    stream = RunStream(None, dict(run_id=f"rand{seed}", lab="lab", sut="sut", analyzer="sim", t_utc_s=T0_UTC_S))
    docs: list[RunDocument] = [stream.start, stream.descriptor(stream="s", sample_interval_s=interval_s,
                                                               source=SourceInfo(kind="simulator"))]
    if rng.random() < 0.8:
        docs.append(stream.mark("testing_begin", mode="testing", t_utc_s=T0_UTC_S + 0.5))
    marks = [("power_begin", begin_utc_s), ("power_end", end_utc_s)]
    lo = 0
    while lo < n:
        hi = min(n, lo + int(rng.integers(1, 13)))
        docs.append(stream.page("s", mode="testing", t_utc_s=times[lo:hi].tolist(), power_w=power[lo:hi],
                                voltage_v=[230.0] * (hi - lo), current_a=[1.0] * (hi - lo),
                                power_factor=[1.0] * (hi - lo), voltage_range_v=[300.0] * (hi - lo),
                                current_range_a=[2.0] * (hi - lo), uncertainty_w=uncertainty[lo:hi],
                                flags=flags[lo:hi]))
        while marks and marks[0][1] <= times[hi - 1]:
            name, t = marks.pop(0)
            docs.append(stream.mark(name, mode="testing", t_utc_s=t, source="loadgen"))  # type: ignore[arg-type]
        lo = hi
    docs.append(stream.mark("testing_end", mode="testing", t_utc_s=float(times[-1]) + 0.01))
    docs.append(stream.stop("success", t_utc_s=float(times[-1]) + 0.02))
    if rng.random() < 0.15:  # two neighbouring pages arrive swapped
        pages = [i for i, d in enumerate(docs) if isinstance(d, SamplePage)]
        if len(pages) > 2:
            k = int(rng.integers(0, len(pages) - 1))
            i, j = pages[k], pages[k + 1]
            docs[i], docs[j] = docs[j], docs[i]
    return docs


def failures(findings: list[Finding]) -> dict[str, Finding]:
    return {f.rule: f for f in findings if f.status == "fail"}


@pytest.mark.parametrize("every_s", [2.0, 10.0])
def test_live_findings_are_the_live_rules_over_the_run_so_far(every_s: float) -> None:
    """The reference evaluates every live rule after every document. The live checker must report
    each failure with the reference's very finding at that document; a failure its screen covers on
    the very document where the reference first sees it; and every failure of the finished run."""
    for seed in SEEDS:
        docs = random_run(seed)
        live = LiveChecker(f"rand{seed}", every_s=every_s)
        reference = RunView(f"rand{seed}")
        first_fail: dict[str, int] = {}
        reported: dict[str, int] = {}
        expected: dict[str, Finding] = {}
        for index, document in enumerate(docs):
            reference.add(document)
            expected = failures(evaluate_live(reference, CheckOptions()))
            for rule in expected:
                first_fail.setdefault(rule, index)
            for finding in live.feed(document):
                if finding.rule in {r.id for r in LIVE_RULES}:
                    assert finding == expected.get(finding.rule), (seed, index, finding.rule)
                    reported[finding.rule] = index
        for rule, index in first_fail.items():
            if rule in SCREENED_RULES:
                assert reported.get(rule) == index, (seed, rule, index, reported)
        assert set(expected) <= set(reported), (seed, set(expected) - set(reported))


def test_the_live_view_is_the_view_built_again_from_the_documents() -> None:
    """The service judges a finished run on its live view when the documents came in seq order:
    every rule and the summary say exactly what they say on the view built again from them."""
    in_order = 0
    for seed in SEEDS:
        docs = random_run(seed)
        live = LiveChecker(f"rand{seed}", every_s=2.0)
        for document in docs:
            live.feed(document)
        view = stream_view(live)
        rebuilt = RunView.from_documents([live.view.documents[k] for k in sorted(live.view.documents)],
                                         f"rand{seed}")
        ordered = [d.seq for d in docs] == sorted(d.seq for d in docs)
        assert (view is live.view) == ordered, seed
        in_order += ordered
        assert evaluate(view) == evaluate(rebuilt), seed
        assert summarize(view) == summarize(rebuilt), seed
    assert 0 < in_order < len(SEEDS)  # both ways were taken


def test_a_view_knows_whether_its_documents_came_in_seq_order() -> None:
    marks = [PhaseMark(run_id="r", seq=seq, name="power_begin", mode="testing", t_utc_s=1.0, source="loadgen")
             for seq in (0, 2, 1)]
    view = RunView("r")
    view.add(marks[0])
    view.add(marks[1])
    view.add(marks[1])  # a duplicate changes nothing
    assert view.in_seq_order
    view.add(marks[2])
    assert not view.in_seq_order
