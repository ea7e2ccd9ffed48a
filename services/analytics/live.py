"""Live compliance: a pure state machine fed with one run's documents as they arrive.

It reports a problem the moment it shows, so that a doomed 10-minute run can be stopped early:
per-sample uncertainty above 1 % in the testing run, overrange in the testing run, gaps between
samples and missing samples, lost pages, and a director-SUT clock offset over 400 ms. Each
(rule, mode) is reported once per run, with the evidence of its first occurrence. Documents are
handled idempotently by ``seq``: a redelivered document changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mlpower.schema import Finding, PhaseMark, RunDocument, RunStart, SampleFlag, SamplePage, StreamDescriptor

from .rules import CLOCK_OFFSET_LIMIT_S, UNCERTAINTY_LIMIT

GAP_FACTOR = 2.0  # a gap is more than twice the stream's sample interval

# Every live rule and its severity: the checker reports with these, and the metrics start each
# one at zero per SUT (so an alert's increase() reads 0, not "no data", before the first finding).
LIVE_RULES: dict[str, str] = {
    "live_clock_offset": "error",
    "live_lost_pages": "warning",
    "live_sample_gap": "warning",
    "live_missing_sample": "warning",
    "live_overrange": "error",
    "live_uncertainty": "error",
}
_AGENT_OFFSET = re.compile(r"clock offset to director ([+-]?\d+(?:\.\d+)?) ms")
_OFFSET_S = re.compile(r"clock_offset_s=([+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)")


def clock_offset_in(text: str) -> float | None:
    """A clock offset (seconds) stated in a mark or phase detail: the agent's ``clock offset to
    director +12.3 ms`` or ``clock_offset_s=0.0123`` (also as a JSON key)."""
    match = _AGENT_OFFSET.search(text)
    if match:
        return float(match.group(1)) / 1000.0
    match = _OFFSET_S.search(text)
    if match:
        return float(match.group(1))
    if text.startswith("{"):
        try:
            value = json.loads(text).get("clock_offset_s")
            return float(value) if value is not None else None
        except (ValueError, AttributeError, TypeError):
            return None
    return None


@dataclass
class LiveChecker:
    run_id: str
    sut: str = ""
    uncertainty_limit: float = UNCERTAINTY_LIMIT
    clock_limit_s: float = CLOCK_OFFSET_LIMIT_S
    seen: set[int] = field(default_factory=set)
    reported: set[tuple[str, str]] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    intervals_s: dict[str, float] = field(default_factory=dict)
    last_t: dict[tuple[str, str], float] = field(default_factory=dict)
    next_page: dict[str, int] = field(default_factory=dict)

    def _report(self, rule: str, scope: str, message: str, **evidence: Any) -> list[Finding]:
        if (rule, scope) in self.reported:
            return []
        self.reported.add((rule, scope))
        finding = Finding(rule=rule, severity=LIVE_RULES[rule], status="fail", message=message,  # type: ignore[arg-type]
                          evidence={"run_id": self.run_id, **evidence})
        self.findings.append(finding)
        return [finding]

    def feed(self, document: RunDocument) -> list[Finding]:
        """New findings caused by this document (none for a duplicate)."""
        if document.seq in self.seen:
            return []
        self.seen.add(document.seq)
        if isinstance(document, RunStart):
            self.sut = self.sut or document.sut
            offset = document.settings.get("clock_offset_s")
            return self.clock_offset(float(offset), "run.start settings") if offset is not None else []
        if isinstance(document, StreamDescriptor):
            self.intervals_s[document.stream] = document.sample_interval_s
            return []
        if isinstance(document, PhaseMark):
            offset = clock_offset_in(document.detail)
            return self.clock_offset(offset, f"mark {document.name}") if offset is not None else []
        if isinstance(document, SamplePage):
            return self._page(document)
        return []

    def clock_offset(self, offset_s: float, where: str) -> list[Finding]:
        if math.isfinite(offset_s) and abs(offset_s) <= self.clock_limit_s:
            return []
        return self._report("live_clock_offset", "run",
                            f"director-SUT clock offset {offset_s * 1000:+.1f} ms exceeds "
                            f"{self.clock_limit_s * 1000:.0f} ms ({where})", clock_offset_s=offset_s, where=where)

    def _page(self, page: SamplePage) -> list[Finding]:
        mode = page.mode or "unknown"
        testing = page.mode == "testing"
        out: list[Finding] = []
        expected = self.next_page.get(page.stream, 0)
        if page.page > expected:
            out += self._report("live_lost_pages", page.stream,
                                f"stream {page.stream}: pages {expected}..{page.page - 1} never arrived",
                                stream=page.stream, first_missing_page=expected, page=page.page)
        self.next_page[page.stream] = max(expected, page.page + 1)
        interval = self.intervals_s.get(page.stream, 1.0)
        where = {"stream": page.stream, "page": page.page, "seq": page.seq, "mode": mode}
        for i, t in enumerate(page.t_utc_s):
            power, u, flags = page.power_w[i], page.uncertainty_w[i], page.flags[i]
            previous = self.last_t.get((page.stream, mode))
            if previous is not None and t - previous > GAP_FACTOR * interval:
                out += self._report("live_sample_gap", f"{page.stream}/{mode}",
                                    f"{t - previous:.2f} s without a sample in {mode} (interval {interval} s)",
                                    gap_s=t - previous, t_utc_s=t, **where)
            self.last_t[(page.stream, mode)] = max(t, previous or t)
            if flags & SampleFlag.MISSING:
                out += self._report("live_missing_sample", f"{page.stream}/{mode}",
                                    f"missing sample in {mode} at {t:.3f}", t_utc_s=t, **where)
            if flags & SampleFlag.OVERRANGE and testing:
                out += self._report("live_overrange", page.stream,
                                    f"overrange in the testing run at {t:.3f}: the fixed range is too low",
                                    t_utc_s=t, power_w=power, current_range_a=page.current_range_a[i], **where)
            if testing and power is not None and power > 0 and u is not None and u / power > self.uncertainty_limit:
                out += self._report("live_uncertainty", page.stream,
                                    f"sample uncertainty {u / power:.2%} above {self.uncertainty_limit:.2%} in the "
                                    "testing run", t_utc_s=t, power_w=power, uncertainty_w=u,
                                    relative=u / power, **where)
        return out
