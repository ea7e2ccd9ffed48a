"""Live compliance: a pure state machine fed with one run's documents as they arrive.

It reports a problem the moment it shows, so that a doomed 10-minute run can be stopped early.
The sample rules of the one table (``rules.LIVE_RULES``: coverage, uncertainty, overrange, the
sampling interval, flagged samples) are evaluated over the run so far, with the same code and
ids as after the run; the window that has begun reaches to the latest sample. Two facts only a
live stream shows are checked here: lost pages, and a director-SUT clock offset over 400 ms
stated in the stream or in the agent's phase events. Each rule is reported once per run, with the
evidence of its first failure. Documents are handled idempotently by ``seq``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlpower.runview import RunView
from mlpower.schema import Finding, PhaseMark, RunDocument, RunStart, SamplePage

from .findings import CheckOptions
from .rules import LIVE_RULES, evaluate_live
from .sample_checks import CLOCK_OFFSET_LIMIT_S, recorded_clock_offsets

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

    def __post_init__(self) -> None:
        self.view = RunView(self.run_id)

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
        out: list[Finding] = []
        if isinstance(document, RunStart):
            self.sut = self.sut or document.sut
        if isinstance(document, RunStart | PhaseMark):
            for offset, where in recorded_clock_offsets(self.view):
                out += self.clock_offset(offset, where)
        if isinstance(document, SamplePage):
            out += self._pages(document)
        if isinstance(document, SamplePage | PhaseMark):
            for finding in evaluate_live(self.view, self.options):
                if finding.status == "fail":
                    out += self._report(finding)
        return out

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
