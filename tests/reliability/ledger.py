"""The reliability ledger: what the reliability suite injected, sent, received and fuzzed.

Tests record into the process-wide ``LEDGER``; ``tests/summaries.py`` prints it at the end of the run.
A crash is any unexpected exception escaping a component under fuzzing or fault injection.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from tests.ledger_base import Mergeable


@dataclass
class Ledger(Mergeable):
    faults_injected: Counter[str] = field(default_factory=Counter)
    samples_sent: int = 0
    samples_received: int = 0
    inputs_fuzzed: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # a test's own summary lines (the soak's)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fault(self, name: str) -> None:
        with self._lock:
            self.faults_injected[name] += 1

    def samples(self, sent: int, received: int) -> None:
        with self._lock:
            self.samples_sent += sent
            self.samples_received += received

    def fuzzed(self, target: str, count: int = 1) -> None:
        with self._lock:
            self.inputs_fuzzed[target] += count

    def note(self, line: str) -> None:
        with self._lock:
            self.notes.append(line)

    def crash(self, what: str) -> None:
        with self._lock:
            self.crashes.append(what)

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults_injected.items())) or "none"
        fuzzed = ", ".join(f"{k}={v}" for k, v in sorted(self.inputs_fuzzed.items())) or "none"
        return [
            f"faults injected: {sum(self.faults_injected.values())} ({faults})",
            f"samples sent: {self.samples_sent}, received: {self.samples_received}",
            f"inputs fuzzed: {sum(self.inputs_fuzzed.values())} ({fuzzed})",
            f"crashes: {len(self.crashes)}" + (f" ({'; '.join(self.crashes[:5])})" if self.crashes else ""),
            *self.notes,
        ]


LEDGER = Ledger()
