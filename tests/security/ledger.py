"""The attack suite's ledger: every attempt, whether it was refused, and every leak found.

Tests record into the process-wide ``LEDGER``; ``tests/summaries.py`` prints the summary at the end of
the run (attempts, refused, leaks found) and fails the run when a leak was recorded by a test
that otherwise passed.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from tests.ledger_base import Mergeable


@dataclass
class Ledger(Mergeable):
    attempts: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    let_through: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    places_searched: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, category: str, what: str, refused: bool) -> bool:
        """Record one attack; returns ``refused`` so a test can assert on it."""
        with self._lock:
            self.attempts[category] += 1
            if refused:
                self.refused[category] += 1
            else:
                self.let_through.append(f"{category}: {what}")
        return refused

    def searched(self, places: int, leaks: list[str]) -> None:
        with self._lock:
            self.places_searched += places
            self.leaks.extend(leaks)

    def lines(self) -> list[str]:
        by_category = ", ".join(f"{k}={self.refused[k]}/{v}" for k, v in sorted(self.attempts.items())) or "none"
        lines = [
            f"attempts: {sum(self.attempts.values())}, refused: {sum(self.refused.values())} ({by_category})",
            f"leaks found: {len(self.leaks)} (in {self.places_searched} answers, logs, files and environments)",
        ]
        if self.let_through:
            lines.append("not refused: " + "; ".join(self.let_through[:10]))
        if self.leaks:
            lines.append("leaks: " + "; ".join(self.leaks[:10]))
        return lines


LEDGER = Ledger()
