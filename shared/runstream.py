"""Publish one run's documents in order, numbered, to the bus and to ``documents.jsonl``.

A run is ``run.start -> run.descriptor -> (run.page | run.mark)* -> run.stop``; ``seq`` numbers
every document of the run from 0 so that consumers can drop duplicates and spot gaps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mlpower import topology
from mlpower.bus import Bus
from mlpower.schema import (
    PhaseMark,
    RunDocument,
    RunStart,
    RunStop,
    SamplePage,
    StreamDescriptor,
    decode,
    encode,
)
from mlpower.timeutil import now_utc_s


class RunStream:
    def __init__(self, bus: Bus | None, start_fields: dict[str, Any], *, log_path: Path | None = None) -> None:
        self._bus = bus
        self._lock = threading.Lock()
        self._seq = 0
        self._pages: dict[str, int] = {}
        self.samples = 0
        self.marks = 0
        self._log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - closed in stop()
        self.start = self._emit(RunStart, **start_fields)
        self.routing_key = topology.run_key(self.start.lab, self.start.sut, self.start.analyzer, self.start.run_id)
        self._send(self.start)

    @property
    def run_id(self) -> str:
        return self.start.run_id

    def _emit(self, model: type[RunDocument], **fields: Any) -> Any:
        fields.setdefault("run_id", getattr(self, "start", None) and self.start.run_id)
        return model(seq=self._seq, **fields)

    def _send(self, document: RunDocument) -> None:
        self._seq += 1
        if self._log is not None:
            self._log.write(encode(document) + b"\n")
            self._log.flush()
        if self._bus is not None:
            self._bus.publish(document, self.routing_key)

    def _publish(self, model: type[RunDocument], **fields: Any) -> Any:
        with self._lock:
            document = self._emit(model, **fields)
            self._send(document)
            return document

    def descriptor(self, **fields: Any) -> StreamDescriptor:
        document: StreamDescriptor = self._publish(StreamDescriptor, **fields)
        return document

    def page(self, stream: str, **columns: Any) -> SamplePage:
        with self._lock:
            number = self._pages.get(stream, 0)
            document = self._emit(SamplePage, stream=stream, page=number, **columns)
            self._send(document)
            self._pages[stream] = number + 1
            self.samples += len(document)
            return document

    def mark(self, name: str, **fields: Any) -> PhaseMark:
        fields.setdefault("t_utc_s", now_utc_s())
        document: PhaseMark = self._publish(PhaseMark, name=name, **fields)
        self.marks += 1
        return document

    def stop(self, status: str, reason: str = "", **fields: Any) -> RunStop:
        fields.setdefault("t_utc_s", now_utc_s())
        document: RunStop = self._publish(
            RunStop, status=status, reason=reason, pages=sum(self._pages.values()), samples=self.samples,
            marks=self.marks, **fields,
        )
        if self._log is not None:
            self._log.close()
            self._log = None
        return document


def read_documents(path: Path) -> Iterator[RunDocument]:
    """Replay a stored ``documents.jsonl``; a broken line raises with the file and line number."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                document = decode(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
            if not isinstance(document, RunDocument):
                raise ValueError(f"{path}:{number}: {getattr(document, 'type', '?')} is not a run document")
            yield document


def pages_to_columns(pages: Iterable[SamplePage]) -> dict[str, list[Any]]:
    """Concatenate sample pages column by column (plus the page's stream and mode per row)."""
    columns: dict[str, list[Any]] = {"stream": [], "mode": []}
    for page in pages:
        rows = len(page)
        columns["stream"].extend([page.stream] * rows)
        columns["mode"].extend([page.mode] * rows)
        for column in ("t_utc_s", "power_w", "voltage_v", "current_a", "power_factor", "voltage_range_v",
                       "current_range_a", "uncertainty_w", "flags"):
            columns.setdefault(column, []).extend(getattr(page, column))
    return columns
