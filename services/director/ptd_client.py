"""Talking to PTDaemon: its line protocol on TCP (``cmd\\r\\n`` out, one ``\\n``-terminated line back,
with a timeout; every exchange kept as a ``PtdMessage``, server.json ``ptd_messages``), and its
data log read as it grows."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import AnalyzerLost, AnalyzerTimeout, ReplyParseError
from .transport import peer_closed

MAX_LINE = 65536

@dataclass
class PtdMessage:
    cmd: str
    reply: str
    cmd_time: float
    reply_time: float
    live: bool = False  # an RL poll for live samples, not part of power-dev's sequence

    def as_dict(self) -> dict[str, str]:
        """The server.json ``ptd_messages`` form."""
        return {"cmd": self.cmd, "reply": self.reply}


class PtdConnection:
    """``cmd\\r\\n`` out, one ``\\n``-terminated line back (``\\r`` stripped), with a timeout."""

    def __init__(self, host: str, port: int, *, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def connect(self, connect_timeout_s: float = 2.0) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=connect_timeout_s)
        except OSError as exc:
            raise AnalyzerLost(f"cannot connect to PTDaemon at {self.host}:{self.port}: {exc}") from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, cmd: str) -> None:
        if self._sock is None:
            raise AnalyzerLost("PTDaemon connection is closed")
        try:
            self._sock.sendall((cmd + "\r\n").encode("ascii"))
        except OSError as exc:
            raise AnalyzerLost(f"PTDaemon connection lost while sending {cmd!r}: {exc}") from exc

    def read_line(self, timeout_s: float | None = None) -> str:
        if self._sock is None:
            raise AnalyzerLost("PTDaemon connection is closed")
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            nl = self._buf.find(b"\n", 0, MAX_LINE + 1)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return line.decode("utf-8", errors="backslashreplace").rstrip("\r")
            if len(self._buf) > MAX_LINE:
                raw = bytes(self._buf[:200])
                self._buf.clear()
                raise ReplyParseError(f"PTDaemon reply longer than {MAX_LINE} bytes", raw)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AnalyzerTimeout(f"PTDaemon at {self.host}:{self.port}: no reply in time")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise AnalyzerLost(f"PTDaemon connection lost: {exc}") from exc
            if not chunk:
                raise AnalyzerLost(f"PTDaemon at {self.host}:{self.port} closed the connection")
            self._buf += chunk

    def peer_closed(self) -> bool:
        if self._sock is None:
            return True
        return not self._buf and peer_closed(self._sock)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


class DataLogTail:
    """PTDaemon's data log (the ``-l`` file) read as it grows: only what is written after ``open``.

    The log grows across sessions (quirk Q3), so ``open`` starts at its current end; PTDaemon
    creates it on its first sample, so a log that does not exist yet is opened when it appears."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._offset = 0
        self._buf = b""

    def open(self) -> None:
        self.close()
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            self._offset = 0
            return
        f.seek(0, os.SEEK_END)
        self._file, self._offset = f, f.tell()

    def poll(self) -> list[str]:
        """The complete lines written since the last poll."""
        if self._file is None:
            if not self.path.exists():
                return []
            self._file = self.path.open("rb")
            self._file.seek(self._offset)
        data = self._file.read()
        if not data:
            return []
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._buf = b""
