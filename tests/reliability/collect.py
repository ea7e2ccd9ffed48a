"""A bus consumer for the fault tests: every run document of one lab (its run.stop is the end-of-run
fact), deduplicated by (run_id, seq) as an idempotent consumer must, with the duplicates counted."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.runstream import read_documents
from mlpower.schema import Message, RunDocument, RunStop, SamplePage
from mlpower.spool import SeqTracker

from tests.reliability.procs import wait_until


@dataclass
class RunCollector:
    """Consumes ``<lab>.#`` on the runs exchange.

    ``durable=True`` uses named durable queues, which keep what is published while this consumer
    is reconnecting after a broker restart; delete them with ``close(delete=True)``.
    """

    bus: Bus
    lab: str
    durable: bool = False
    documents: dict[str, dict[int, RunDocument]] = field(default_factory=lambda: defaultdict(dict))
    stopped: dict[str, RunStop] = field(default_factory=dict)
    duplicates: int = 0
    _tracker: SeqTracker = field(default_factory=SeqTracker)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _subscriptions: list[Subscription] = field(default_factory=list)
    _queues: list[str] = field(default_factory=list)

    def start(self) -> RunCollector:
        lab = topology.segment(self.lab)
        name = f"mlpower.test.{lab}.runs" if self.durable else ""
        spec = topology.QueueSpec(name, topology.RUNS_EXCHANGE, (f"{lab}.#",), durable=self.durable,
                                  exclusive=not self.durable)
        self._subscriptions.append(self.bus.subscribe(spec, self._on_document))
        if name:
            self._queues.append(name)
        return self

    def _on_document(self, message: Message, delivery: Delivery) -> None:
        if not isinstance(message, RunDocument):
            return
        with self._lock:
            if self._tracker.first_time(message.run_id, message.seq):
                self.documents[message.run_id][message.seq] = message
                if isinstance(message, RunStop):
                    self.stopped[message.run_id] = message
            else:
                self.duplicates += 1

    def stop_document(self, run_id: str) -> RunStop | None:
        with self._lock:
            return self.stopped.get(run_id)

    def wait_stopped(self, run_id: str, timeout_s: float = 20.0) -> RunStop:
        found: RunStop = wait_until(lambda: self.stop_document(run_id), timeout_s, f"the run.stop of {run_id}")
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
