"""The simulator's edges: SCPI over a raw TCP socket (LF) and the RS-232 flavour over a pseudo-terminal (CR+LF).

Both feed LF-terminated program messages to a per-connection ``Dispatcher`` and honour the fault
switches: stalled replies, dropped connections, and the USB-style disappearance (the port refuses
connections and the pty vanishes; on return the meter comes back with its power-on settings).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import tty
from collections.abc import Callable

from mlpower.analyzer_sim.faults import Faults, FaultState
from mlpower.analyzer_sim.instrument import Instrument
from mlpower.analyzer_sim.readiness import wait_readable
from mlpower.analyzer_sim.scpi import Dispatcher
from mlpower.listen import listen
from mlpower.logtext import client_text

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 65536  # a client that never sends LF must not grow our buffer forever
# The meter's Ethernet port serves a few clients; more, or silent ones, must not lock the director out.
MAX_CONNECTIONS = 4
HANDSHAKE_TIMEOUT_S = 10.0  # a client's first command (the director asks *IDN? at once)
IDLE_TIMEOUT_S = 300.0  # then: the director polls every sample interval (at most 60 s)


class LineSession:
    """Splits a byte stream into program messages and answers each one."""

    def __init__(self, inst: Instrument, faults: Faults, stop: threading.Event, terminator: bytes,
                 on_command: Callable[[str], None]) -> None:
        self.dispatcher = Dispatcher(inst, stop, on_command)
        self.faults, self.stop, self.terminator = faults, stop, terminator
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        replies: list[bytes] = []
        while b"\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n", 1)
            line = raw.decode("ascii", errors="replace").strip("\r").strip()
            if not line:
                continue
            try:
                reply = self.dispatcher.execute(line)
            except Exception:  # a bug in one command must not take the instrument down
                log.exception("command %s failed", client_text(line))
                self.dispatcher.inst.push_error(102)
                continue
            if reply is not None:
                stall_s = self.faults.snapshot().stall_s
                if stall_s > 0:
                    self.stop.wait(stall_s)
                replies.append(reply + self.terminator)
        if len(self.buffer) > MAX_LINE_BYTES:
            self.buffer = b""
            self.dispatcher.inst.push_error(102)
        return replies


def _close_listener(listener: socket.socket | None) -> None:
    """Stop listening now: a bare close() leaves the port open while another thread is in poll() on it."""
    if listener is None:
        return
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()


class ScpiTcpServer:
    def __init__(self, inst: Instrument, faults: Faults, host: str = "127.0.0.1", port: int = 0,
                 on_command: Callable[[str], None] | None = None, *, max_connections: int = MAX_CONNECTIONS,
                 handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.inst, self.faults, self.host = inst, faults, host
        self.max_connections = max_connections
        self.handshake_timeout_s, self.idle_timeout_s = handshake_timeout_s, idle_timeout_s
        self.refused = 0
        self.on_command = on_command or (lambda header: None)
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.port = self._listen(port)
        self._thread = threading.Thread(target=self._accept_loop, name=f"scpi-tcp-{self.port}", daemon=True)
        self._thread.start()
        faults.subscribe(self._on_fault)

    def _listen(self, port: int) -> int:
        listener = listen(self.host, port, backlog=16, what="simulator SCPI")
        self._listener = listener
        return int(listener.getsockname()[1])

    def _on_fault(self, name: str, state: FaultState) -> None:
        if state.drop_connection or state.disconnected:
            self._close_connections()
        with self._lock:
            listening = self._listener is not None
        if state.disconnected and listening:
            with self._lock:
                listener, self._listener = self._listener, None
            _close_listener(listener)
        elif not state.disconnected and not listening and not self._stop.is_set():
            self.inst.power_on()  # back from the dead: power-on settings, empty queues
            with self._lock:
                self._listen(self.port)

    def _close_connections(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                self._stop.wait(0.05)
                continue
            try:
                if not wait_readable(listener, 0.2):
                    continue
                conn, _ = listener.accept()
            except (OSError, ValueError):
                continue  # the listener was closed by a fault or by stop()
            if self.faults.snapshot().drop_connection:
                conn.close()
                continue
            with self._lock:
                full = len(self._conns) >= self.max_connections
                if not full:
                    self._conns.add(conn)
            if full:  # SCPI has no "busy" reply: the connection is closed at once, as a full meter does
                self.refused += 1
                log.debug("SCPI connection refused: %d open (the limit)", self.max_connections)
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="scpi-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        session = LineSession(self.inst, self.faults, self._stop, b"\n", lambda h: self.on_command(h))
        last_heard, limit_s = time.monotonic(), self.handshake_timeout_s
        try:
            while not self._stop.is_set():
                if not wait_readable(conn, 0.2):
                    if time.monotonic() - last_heard > limit_s:
                        log.info("SCPI connection closed: silent for %g s", limit_s)
                        break
                    continue
                data = conn.recv(4096)
                if not data:
                    break
                last_heard, limit_s = time.monotonic(), self.idle_timeout_s
                if self.faults.snapshot().drop_connection:
                    break
                for reply in session.feed(data):
                    conn.sendall(reply)
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            listener, self._listener = self._listener, None
        _close_listener(listener)
        self._close_connections()
        self._thread.join(timeout=2)


class ScpiPtyServer:
    """A pseudo-terminal whose slave end (``path``) behaves like the meter's RS-232 port."""

    def __init__(self, inst: Instrument, faults: Faults, on_command: Callable[[str], None] | None = None) -> None:
        self.inst, self.faults = inst, faults
        self.on_command = on_command or (lambda header: None)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self.path: str | None = None
        self._generation = 0
        self._open()
        faults.subscribe(self._on_fault)

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass as on a serial line
        with self._lock:
            self._master, self._slave, self.path = master, slave, os.ttyname(slave)
            self._generation += 1
            generation = self._generation
        threading.Thread(target=self._serve, args=(master, generation), name="scpi-pty", daemon=True).start()

    def _close(self) -> None:
        with self._lock:
            master, slave, self._master, self._slave = self._master, self._slave, None, None
            self._generation += 1
        for fd in (slave, master):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _on_fault(self, name: str, state: FaultState) -> None:
        with self._lock:
            is_open = self._master is not None
        if state.disconnected and is_open:
            self._close()  # like a USB-serial adapter unplugged: the device node goes away
        elif not state.disconnected and not is_open and not self._stop.is_set():
            self.inst.power_on()
            self._open()

    def _serve(self, master: int, generation: int) -> None:
        session = LineSession(self.inst, self.faults, self._stop, b"\r\n", lambda h: self.on_command(h))
        while not self._stop.is_set():
            with self._lock:
                if generation != self._generation:
                    return
            try:
                if not wait_readable(master, 0.2):
                    continue
                data = os.read(master, 4096)
            except (OSError, ValueError):
                return
            if not data:
                continue
            if self.faults.snapshot().drop_connection:
                continue  # a dead line: what is sent is lost and nothing answers
            try:
                for reply in session.feed(data):
                    os.write(master, reply)
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._close()
