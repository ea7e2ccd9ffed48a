"""What a person watching a measurement wants to see, folded from the bus: the phase, the elapsed
time, the live watts, the samples so far, and the findings as they arise. Pure state; the demo's
display and ``mlpower lab run`` render it, and wait on ``wait_change`` for the next update."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mlpower.schema import (
    LiveFinding,
    Message,
    PhaseMark,
    RunAnalyzed,
    RunStart,
    RunStop,
    SampleFlag,
    SamplePage,
    WorkloadPhase,
)

_PHASE_OF_MARK = {
    "ranging_begin": "ranging",
    "ranging_end": "between phases",
    "testing_begin": "testing",
    "testing_end": "finishing",
    "power_begin": None,
    "power_end": None,
}


@dataclass
class Progress:
    run_id: str = ""
    phase: str = "starting"
    workload: str = "idle"
    started_utc_s: float | None = None
    last_t_utc_s: float | None = None
    last_power_w: float | None = None
    samples: int = 0
    flagged: int = 0
    findings: list[str] = field(default_factory=list)
    stopped: RunStop | None = None  # the director's last word on the run: status and reason
    analyzed: RunAnalyzed | None = None
    updates: int = 0  # how many messages of this run were folded in
    on_update: Callable[[Progress], None] | None = field(default=None, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _early: list[Message] = field(default_factory=list, repr=False)

    def follows(self, run_id: str) -> bool:
        return run_id == self.run_id

    def follow(self, run_id: str) -> None:
        """Follow ``run_id`` from now on, with what arrived of it before its id was known (a listener
        starts before the run, so that it misses nothing; other runs' messages are dropped)."""
        with self._changed:
            self.run_id, early, self._early = run_id, self._early, []
        for message in early:
            self.update(message)

    def update(self, message: Message) -> None:
        with self._changed:
            if not self.run_id:
                if len(self._early) < 10_000:
                    self._early.append(message)
                return
            run_id = getattr(message, "run_id", "")
            if not self.follows(run_id):
                return
            if isinstance(message, RunStart):
                self.started_utc_s = message.t_utc_s
            elif isinstance(message, SamplePage):
                self._page(message)
            elif isinstance(message, PhaseMark):
                phase = _PHASE_OF_MARK.get(message.name)
                if phase:
                    self.phase = phase
            elif isinstance(message, WorkloadPhase):
                self.workload = {"power_begin": "LoadGen window", "power_end": "after window"}.get(
                    message.state, message.state)
            elif isinstance(message, LiveFinding):
                self.findings.append(f"{message.finding.rule}: {message.finding.message}")
            elif isinstance(message, RunStop):
                self.stopped = message
                self.phase = "analyzing" if message.status == "success" else message.status
            elif isinstance(message, RunAnalyzed):
                self.analyzed = message
                self.phase = "analyzed"
            else:
                return
            self.updates += 1
            self._changed.notify_all()
            if self.on_update is not None:
                self.on_update(self)

    def _page(self, page: SamplePage) -> None:
        self.samples += len(page)
        for t, power, flags in zip(page.t_utc_s, page.power_w, page.flags, strict=True):
            self.last_t_utc_s = t
            if flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE) or power is None or math.isnan(power):
                self.flagged += 1
            else:
                self.last_power_w = power

    def wait_change(self, seen: int, timeout_s: float) -> int:
        """Block until more than ``seen`` updates were folded in (or the timeout); returns the count."""
        with self._changed:
            self._changed.wait_for(lambda: self.updates > seen, timeout=timeout_s)
            return self.updates

    @property
    def failed(self) -> bool:
        """The director ended the run without a measurement to analyze."""
        return self.stopped is not None and self.stopped.status != "success"

    def elapsed_s(self) -> float:
        if self.started_utc_s is None or self.last_t_utc_s is None:
            return 0.0
        return max(0.0, self.last_t_utc_s - self.started_utc_s)

    def line(self) -> str:
        """At most 79 characters: it is redrawn in place, and a wrapped line cannot be."""
        watts = f"{self.last_power_w:7.1f} W" if self.last_power_w is not None else "      - W"
        return (f"{self.phase[:14]:<14} load: {self.workload[:14]:<14} {self.elapsed_s():6.1f} s {watts} "
                f"{self.samples:5d} samples, {self.flagged} flagged")
