"""Helpers for the analyzer-source tests: a scripted raw SCPI server, and a ``ptd`` executable double."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class ScriptedScpiServer:
    """A raw TCP, LF-terminated server whose replies come from ``answer(line) -> reply | None``.

    For the bad-input cases the simulator does not produce (garbage replies, a foreign identity,
    refused items). ``None`` means no reply (a set command, or an unanswered query)."""

    def __init__(self, answer: Callable[[str], str | None]) -> None:
        self.answer = answer
        self.received: list[str] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(2)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def resource(self) -> str:
        return f"TCPIP0::127.0.0.1::{self.port}::SOCKET"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode().strip()
                if not line:
                    continue
                self.received.append(line)
                reply = self.answer(line)
                if reply is not None:
                    try:
                        conn.sendall(reply.encode() + b"\n")
                    except OSError:
                        return

    def stop(self) -> None:
        self._stop.set()
        for conn in self._conns:
            try:
                conn.close()
            except OSError:
                pass
        self._listener.close()
        self._thread.join(2)

    def __enter__(self) -> ScriptedScpiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wt310e_answers(
    *,
    idn: str = "YOKOGAWA,WT310E,C2PH13047V,F1.03",
    values: str = "23.85E+00,247.92E+00,198.11E-03,0.4855E+00",
    refuse: tuple[str, ...] = (),
) -> Callable[[str], str | None]:
    """A minimal well-behaved WT310E: every query answered, ``values`` for VALUE?; a set command
    containing one of ``refuse`` queues error 113."""
    errors: list[str] = []

    def answer(line: str) -> str | None:
        upper = line.upper()
        if any(r in upper for r in refuse) and not upper.endswith("?"):
            errors.append('113,"Undefined header"')
            return None
        if upper == "*IDN?":
            return idn
        if upper.startswith(":STATUS:ERROR?"):
            return errors.pop(0) if errors else '0,"No error"'
        if upper.startswith(":STATUS:EESR?"):
            return "1"
        if upper.startswith(":INPUT:VOLTAGE:RANGE?"):
            return "300.0E+00;1;500.0E-03;1"
        if upper.startswith(":NUMERIC:NORMAL:VALUE?"):
            return values
        return None

    return answer
