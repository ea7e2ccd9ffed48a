"""A local, ordered spool of messages the broker has not confirmed yet.

When RabbitMQ goes away mid-run, the sampling loop must not block or lose pages: publishes go to
this spool (a file when a folder is configured, so a crash of the publisher loses nothing either)
and are replayed in order once the broker is back. Replays are at-least-once; consumers drop
duplicates by (run_id, seq) with ``SeqTracker``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Spooled:
    exchange: str
    routing_key: str
    body: bytes


class Spool:
    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._items: deque[Spooled] = deque()
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._items.extend(self._load(path))

    @staticmethod
    def _load(path: Path) -> list[Spooled]:
        if not path.exists():
            return []
        items = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                raw = json.loads(line)
                items.append(Spooled(raw["exchange"], raw["routing_key"], base64.b64decode(raw["body"])))
            except (ValueError, KeyError):
                continue  # a line torn by a crash mid-write: it was never acknowledged to anyone
        return items

    def _rewrite(self) -> None:
        if self._path is None:
            return
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for item in self._items:
                handle.write(self._line(item))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path)

    @staticmethod
    def _line(item: Spooled) -> str:
        body = base64.b64encode(item.body).decode("ascii")
        return json.dumps({"exchange": item.exchange, "routing_key": item.routing_key, "body": body}) + "\n"

    def append(self, item: Spooled) -> None:
        with self._lock:
            self._items.append(item)
            if self._path is not None:
                with open(self._path, "a", encoding="utf-8") as handle:
                    handle.write(self._line(item))

    def head(self) -> Spooled | None:
        with self._lock:
            return self._items[0] if self._items else None

    def pop_head(self) -> None:
        with self._lock:
            self._items.popleft()
            self._rewrite()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class SeqTracker:
    """Remembers which (run_id, seq) documents a consumer has handled, to drop replayed duplicates."""

    def __init__(self, max_runs: int = 1000) -> None:
        self._seen: dict[str, set[int]] = {}
        self._max_runs = max_runs
        self._lock = threading.Lock()

    def first_time(self, run_id: str, seq: int) -> bool:
        with self._lock:
            seen = self._seen.get(run_id)
            if seen is None:
                if len(self._seen) >= self._max_runs:
                    self._seen.pop(next(iter(self._seen)))
                seen = self._seen[run_id] = set()
            if seq in seen:
                return False
            seen.add(seq)
            return True
