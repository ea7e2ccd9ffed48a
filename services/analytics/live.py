"""Live compliance: a pure state machine fed with one run's documents as they arrive.

It reports a problem the moment it shows, so that a doomed 10-minute run can be stopped early.
The sample rules of the one table (``rules.LIVE_RULES``: coverage, uncertainty, overrange, the
sampling interval, flagged samples) are evaluated over the run so far, with the same code and
ids as after the run; the window that has begun reaches to the latest sample. Two facts only a
live stream shows are checked here: lost pages, and a director-SUT clock offset over 400 ms
stated in the stream or in the agent's phase events. Each rule is reported once per run, with the
evidence of its first failure. Documents are handled idempotently by ``seq``.

When the rules run: they are evaluated over the whole window so far, so each evaluation costs
the same whether a page brings one sample or fifty. They run on every mark (a mark opens or
closes a window); on a page that holds anything a rule could fail on (a sample that is not
usable, an uncertainty over the limit or unknown, a step in time over the stream's interval plus
the coverage tolerance, a gap from the page before) so such a failure shows on the page that
brings it; and otherwise once per ``every_s`` of stream time, for what only the whole window
shows (the median interval). The screen only decides *when* to evaluate: the rules decide.
A clean stream so costs one evaluation per ``every_s`` instead of one per page.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace
from typing import Any

from mlpower.runview import RunView, Window
from mlpower.schema import Finding, PhaseMark, RunDocument, RunStart, SamplePage

from .coverage import COVERAGE_TOLERANCE
from .findings import CheckOptions
from .rules import LIVE_RULES, evaluate_live
from .sample_checks import CLOCK_OFFSET_LIMIT_S, UNCERTAINTY_LIMIT, recorded_clock_offsets

DEFAULT_EVERY_S = 10.0  # clean pages: the whole window is judged once per 10 s of stream time
# What the screen of every page covers completely (a sample that is not usable, an uncertainty over
# the limit or unknown): on a clean page these rules cannot newly fail, only marks move their window.
SCREENED_RULES = frozenset({"flagged_samples", "overrange", "uncertainty"})

# Facts only a live stream shows, and their severities.
STREAM_RULES: dict[str, str] = {"live_lost_pages": "warning", "live_clock_offset": "error"}
# Every rule live analytics can report: the metrics start each at zero per SUT (so an alert's
# increase() reads 0, not "no data", before the first finding).
LIVE_SEVERITIES: dict[str, str] = {**{rule.id: rule.severity for rule in LIVE_RULES}, **STREAM_RULES}


@dataclass
class LiveChecker:
    run_id: str
    sut: str = ""
    options: CheckOptions = field(default_factory=CheckOptions)
    clock_limit_s: float = CLOCK_OFFSET_LIMIT_S
    view: RunView = field(init=False)
    reported: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    next_page: dict[str, int] = field(default_factory=dict)
    every_s: float = DEFAULT_EVERY_S
    _judged_until_s: float = field(default=-math.inf, init=False)
    _last_t: dict[str, float] = field(default_factory=dict, init=False)
    _judged_window: Window | None = field(default=None, init=False)
    _live_options: CheckOptions = field(init=False)

    def __post_init__(self) -> None:
        self.view = RunView(self.run_id)
        self._live_options = replace(self.options, live=True)  # made once, not on every evaluation

    def _report(self, finding: Finding) -> list[Finding]:
        if finding.rule in self.reported:
            return []
        self.reported.add(finding.rule)
        self.findings.append(finding)
        return [finding]

    def _stream_finding(self, rule: str, message: str, **evidence: Any) -> list[Finding]:
        return self._report(Finding(rule=rule, severity=STREAM_RULES[rule], status="fail",
                                    message=message, evidence={"run_id": self.run_id, **evidence}))

    def feed(self, document: RunDocument) -> list[Finding]:
        """New findings caused by this document (none for a duplicate)."""
        if not self.view.add(document):
            return []
        if isinstance(document, SamplePage):  # most documents: tested first
            out = self._pages(document)
            due = self._due(document)
            if due is None:
                return out
            # a clean page's samples can fail no rule the screen covers: only the whole window's are asked
            skip = self.reported if due else self.reported | SCREENED_RULES
        else:
            out = []
            if isinstance(document, RunStart):
                self.sut = self.sut or document.sut
            if isinstance(document, RunStart | PhaseMark):
                for offset, where in recorded_clock_offsets(self.view):
                    out += self.clock_offset(offset, where)
            if not (isinstance(document, PhaseMark) and self._window_moved()):
                return out
            skip = self.reported
        for finding in evaluate_live(self.view, self._live_options, skip=skip):
            if finding.status == "fail":
                out += self._report(finding)
        return out

    def _window_moved(self) -> bool:
        """Whether a mark changed the window the sample rules judge (a mark that changes none, such as
        the director's testing_end after LoadGen's power_end, leaves their findings as they were)."""
        window = self.view.loadgen_window("testing", live=True) or self.view.phase_window("testing", live=True)
        moved = window != self._judged_window
        self._judged_window = window
        return moved

    def _due(self, page: SamplePage) -> bool | None:
        """Whether to evaluate the rules now: True (every rule) for a suspicious page, False (the
        whole window's rules) once ``every_s`` since the last time, None (not now) otherwise."""
        if not page.t_utc_s:
            return None
        latest = max(page.t_utc_s[0], page.t_utc_s[-1])
        if self._judged_until_s == -math.inf:
            self._judged_until_s = page.t_utc_s[0]  # the first clean page starts the count; the screen judges it
        if self._suspicious(page):
            self._judged_until_s = latest
            return True
        if latest >= self._judged_until_s + self.every_s:
            self._judged_until_s = latest
            return False
        return None

    def _suspicious(self, page: SamplePage) -> bool:
        """Whether a page holds anything a live rule could fail on. It runs on every page, so it works
        on the page's own columns with builtins that loop in C (a page is a few to fifty samples:
        converting it to arrays would cost more than the whole check)."""
        if page.mode == "ranging":
            return False  # ranging is never judged: only the testing window is
        t, power, uncertainty = page.t_utc_s, page.power_w, page.uncertainty_w
        if any(page.flags) or None in power or None in uncertainty or min(power) <= 0:  # type: ignore[operator,unused-ignore]
            return True  # a flag (overrange, missing...), a missing value or a non-positive power
        if max(map(operator.truediv, uncertainty, power)) > UNCERTAINTY_LIMIT:
            return True
        descriptor = self.view.descriptors.get(page.stream)
        limit_s = (descriptor.sample_interval_s if descriptor is not None else 1.0) * (1 + COVERAGE_TOLERANCE)
        before = self._last_t.get(page.stream)
        last = t[-1]
        self._last_t[page.stream] = last if before is None or last > before else before
        if before is not None and not 0 <= t[0] - before <= limit_s:
            return True  # the step from the page before
        if len(t) < 2:
            return False
        steps = list(map(operator.sub, t[1:], t))  # the page's own steps (map stops at the shorter)
        return max(steps) > limit_s or min(steps) < 0

    def clock_offset(self, offset_s: float, where: str) -> list[Finding]:
        if math.isfinite(offset_s) and abs(offset_s) <= self.clock_limit_s:
            return []
        return self._stream_finding("live_clock_offset",
                                    f"director-SUT clock offset {offset_s * 1000:+.1f} ms exceeds "
                                    f"{self.clock_limit_s * 1000:.0f} ms ({where})", clock_offset_s=offset_s,
                                    where=where)

    def _pages(self, page: SamplePage) -> list[Finding]:
        expected = self.next_page.get(page.stream, 0)
        self.next_page[page.stream] = max(expected, page.page + 1)
        if page.page <= expected:
            return []
        return self._stream_finding("live_lost_pages", f"stream {page.stream}: pages {expected}..{page.page - 1} "
                                                       "never arrived", stream=page.stream,
                                    first_missing_page=expected, page=page.page)
