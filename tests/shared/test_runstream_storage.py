"""documents.jsonl on a full disk: the partial line is cut off, the bus still gets every document."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from mlpower.runstream import RunStream, read_documents, storage_reason
from mlpower.schema import Message, RunStop


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[Message] = []

    def publish(self, message: Message, routing_key: str) -> None:
        self.published.append(message)


class FillsUp:
    """A file that takes ``room`` more bytes, writes part of the next line, then refuses: ENOSPC."""

    def __init__(self, real: Any, room: int) -> None:
        self.real, self.room = real, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            if self.room:
                os.write(self.real.fileno(), bytes(data[: self.room]))  # the torn part a full disk leaves
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return int(self.real.write(data))

    def fileno(self) -> int:
        return int(self.real.fileno())

    def close(self) -> None:
        self.real.close()


def _page(stream: RunStream, n: int) -> None:
    stream.page("a1", mode="testing", t_utc_s=[float(n)], power_w=[100.0], voltage_v=[230.0], current_a=[0.4],
                power_factor=[1.0], voltage_range_v=[300.0], current_range_a=[1.0], uncertainty_w=[0.2], flags=[0])


def test_a_full_disk_leaves_a_readable_prefix_and_the_bus_gets_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "documents.jsonl"
    bus = RecordingBus()
    told: list[str] = []
    stream = RunStream(bus, dict(run_id="r1", lab="lab", sut="sut", analyzer="a1", t_utc_s=1.0), log_path=path,
                       on_log_error=told.append)
    _page(stream, 0)
    stream._log = FillsUp(stream._log, room=30)  # the next page does not fit
    _page(stream, 1)
    _page(stream, 2)
    stop = stream.stop("failed", "disk")
    assert told == ["results disk full: cannot write documents.jsonl: No space left on device"]
    assert stream.log_error == told[0]
    stored = list(read_documents(path))  # no torn line
    assert [d.seq for d in stored] == [0, 1]
    assert [d.seq for d in bus.published] == [0, 1, 2, 3, 4] and isinstance(bus.published[-1], RunStop)
    assert stop.samples == 3 and stop.pages == 3


def test_storage_reason_names_a_full_disk_and_other_errors_plainly() -> None:
    assert storage_reason(OSError(errno.ENOSPC, "No space left on device"), "x").startswith("results disk full")
    assert storage_reason(OSError(errno.EACCES, "Permission denied"), "x") == "cannot write x: Permission denied"
