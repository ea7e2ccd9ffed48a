"""Publish one run's documents in order, numbered, to the bus and to ``documents.jsonl``.

A run is ``run.start -> run.descriptor -> (run.page | run.mark)* -> run.stop``; ``seq`` numbers
every document of the run from 0 so that consumers can drop duplicates and spot gaps.

When ``documents.jsonl`` cannot be written (the disk is full), the partial line is cut off so
the file stays a readable prefix of the run, the file is no longer written, ``log_error`` says
why and ``on_log_error`` is told once; the documents still go to the bus, up to the run.stop.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpower import topology
from mlpower.samples import SAMPLE_COLUMN_NAMES
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

if TYPE_CHECKING:  # the type only: reading a stored stream (runview, runtree) must not pull in the bus
    from mlpower.bus import Bus

log = logging.getLogger(__name__)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def storage_reason(exc: OSError, what: str) -> str:
    """Why a results file could not be written, in words; a full disk is named as such."""
    if exc.errno in DISK_FULL_ERRNOS:
        return f"results disk full: cannot write {what}: {exc.strerror or exc}"
    return f"cannot write {what}: {exc.strerror or exc}"


class RunStream:
    def __init__(self, bus: Bus | None, start_fields: dict[str, Any], *, log_path: Path | None = None,
                 on_log_error: Callable[[str], None] | None = None) -> None:
        self._bus = bus
        self._lock = threading.Lock()
        self._seq = 0
        self._pages: dict[str, int] = {}
        self.samples = 0
        self.marks = 0
        self.log_error: str | None = None
        self.on_log_error = on_log_error
        self._log_path = log_path
        # unbuffered: each document is one write, so a failed one can be cut off exactly
        self._log = open(log_path, "ab", buffering=0) if log_path is not None else None  # noqa: SIM115 - closed in stop()
        self._log_size = os.fstat(self._log.fileno()).st_size if self._log is not None else 0
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
            self._store(encode(document) + b"\n")
        if self._bus is not None:
            self._bus.publish(document, self.routing_key)

    def _store(self, line: bytes) -> None:
        assert self._log is not None
        try:
            view = memoryview(line)
            while view:
                written = self._log.write(view)
                if not written:
                    raise OSError(errno.EIO, "nothing written")
                view = view[written:]
        except OSError as exc:
            try:
                os.ftruncate(self._log.fileno(), self._log_size)  # no torn line: the file stays a readable prefix
            except OSError:
                log.exception("could not cut the partial line off %s", self._log_path)
            self._log.close()
            self._log = None
            name = self._log_path.name if self._log_path is not None else "documents.jsonl"
            self.log_error = storage_reason(exc, name)
            log.error("run %s: %s; its documents go on to the bus only", self.run_id, self.log_error)
            if self.on_log_error is not None:
                self.on_log_error(self.log_error)
            return
        self._log_size += len(line)

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
        for column in SAMPLE_COLUMN_NAMES:
            columns.setdefault(column, []).extend(getattr(page, column))
    return columns
