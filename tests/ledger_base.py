"""What the suite's ledgers share: a plain-data state a worker process hands over, and adding one up.

Counters add, lists extend, numbers sum; the lock is the process's own and never travels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import fields
from typing import Any


class Mergeable:
    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, Counter | list):
                value = dict(value) if isinstance(value, Counter) else list(value)
            out[f.name] = value
        return out

    def merge(self, state: dict[str, Any]) -> None:
        with self._lock:  # type: ignore[attr-defined]
            for name, value in state.items():
                mine = getattr(self, name)
                if isinstance(mine, Counter):
                    mine.update(value)
                elif isinstance(mine, list):
                    mine.extend(value)
                else:
                    setattr(self, name, mine + value)
