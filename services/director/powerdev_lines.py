"""Lines from a power-dev client's socket: bounded in length and in time (power-dev-protocol.md §2.1)."""

from __future__ import annotations

import socket
import time


class LineTooLong(Exception):
    pass


class LineReader:
    """Lines from a socket, each at most ``max_bytes``; an overlong one raises once, then is skipped.

    ``readline(timeout_s)`` gives the client that long to complete a line (a deadline, not a pause
    between bytes: a byte now and then does not keep a connection alive) and raises
    ``TimeoutError`` when it does not; what arrived of the line is kept for the next call."""

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        self._sock, self._max = sock, max_bytes
        self._buffer = b""
        self._discarding = False

    def readline(self, timeout_s: float | None = None) -> str | None:
        """The next line without its line end, or None at EOF."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[:newline], self._buffer[newline + 1:]
                if self._discarding:
                    self._discarding = False
                    continue
                if len(line) > self._max:
                    raise LineTooLong()
                return line.decode("utf-8", errors="replace").rstrip("\r")
            if len(self._buffer) > self._max:
                self._buffer = b""
                if not self._discarding:
                    self._discarding = True
                    raise LineTooLong()
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no complete line in time")
                self._sock.settimeout(remaining)
            else:
                self._sock.settimeout(None)
            chunk = self._sock.recv(65536)  # TimeoutError (socket.timeout) when the deadline passes
            if not chunk:
                return None
            self._buffer += chunk
