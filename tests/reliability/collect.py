"""A bus consumer for the fault tests: every run document and RunCompleted of one lab, deduplicated
by (run_id, seq) as an idempotent consumer must, with the duplicates counted."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.runstream import read_documents
from mlpower.schema import Message, RunCompleted, RunDocument, RunStop, SamplePage
from mlpower.spool import SeqTracker

from tests.reliability.procs import wait_until


@dataclass
class RunCollector:
    """Consumes ``<lab>.#`` on the runs exchange and ``run_completed.<lab>.#`` on events.

    ``durable=True`` uses named durable queues, which keep what is published while this consumer
    is reconnecting after a broker restart; delete them with ``close(delete=True)``.
    """

    bus: Bus
    lab: str
    durable: bool = False
    documents: dict[str, dict[int, RunDocument]] = field(default_factory=lambda: defaultdict(dict))
    completed: dict[str, RunCompleted] = field(default_factory=dict)
    duplicates: int = 0
    _tracker: SeqTracker = field(default_factory=SeqTracker)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _subscriptions: list[Subscription] = field(default_factory=list)
    _queues: list[str] = field(default_factory=list)

    def start(self) -> RunCollector:
        lab = topology.segment(self.lab)
        for exchange, pattern, handler in ((topology.RUNS_EXCHANGE, f"{lab}.#", self._on_document),
                                           (topology.EVENTS_EXCHANGE, f"run_completed.{lab}.#", self._on_event)):
            name = f"mlpower.test.{lab}.{exchange.rsplit('.', 1)[-1]}" if self.durable else ""
            spec = topology.QueueSpec(name, exchange, (pattern,), durable=self.durable, exclusive=not self.durable)
            self._subscriptions.append(self.bus.subscribe(spec, handler))
            if name:
                self._queues.append(name)
        return self

    def _on_document(self, message: Message, delivery: Delivery) -> None:
        if not isinstance(message, RunDocument):
            return
        with self._lock:
            if self._tracker.first_time(message.run_id, message.seq):
                self.documents[message.run_id][message.seq] = message
            else:
                self.duplicates += 1

    def _on_event(self, message: Message, delivery: Delivery) -> None:
        if isinstance(message, RunCompleted):
            with self._lock:
                self.completed[message.run_id] = message

    def stop_document(self, run_id: str) -> RunStop | None:
        with self._lock:
            return next((d for d in self.documents.get(run_id, {}).values() if isinstance(d, RunStop)), None)

    def wait_completed(self, run_id: str, timeout_s: float = 20.0) -> RunCompleted:
        found: RunCompleted = wait_until(lambda: self.completed.get(run_id), timeout_s, f"RunCompleted of {run_id}")
        return found

    def wait_all(self, run_id: str, count: int, timeout_s: float = 30.0) -> dict[int, RunDocument]:
        """Wait until ``count`` distinct documents of the run (seq 0..count-1) arrived."""
        def arrived() -> bool:
            with self._lock:
                return len(self.documents.get(run_id, {})) >= count

        wait_until(arrived, timeout_s, f"{count} documents of {run_id} (have {len(self.documents.get(run_id, {}))})")
        with self._lock:
            return dict(self.documents[run_id])

    def close(self, delete: bool = False) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        if delete:
            for name in self._queues:
                try:
                    self.bus.delete_queue(name)
                except Exception:  # the broker may be the one that is gone; the queue goes with it
                    pass


def file_documents(run_dir: Path) -> list[RunDocument]:
    return list(read_documents(run_dir / "documents.jsonl"))


def page_samples(documents: Any) -> int:
    return sum(len(d) for d in documents if isinstance(d, SamplePage))
