"""The MLCommons power-dev server protocol (v3) on TCP: a client's lines in, typed session events out.

Framing (power-dev-protocol.md §2.1): one UTF-8 line per message, ``\\r\\n`` sent, ``\\n`` split
with trailing ``\\r`` stripped, undecodable bytes replaced. One reply line per command except
``download`` (a chunked stream). All power-dev wire text lives in this module: a command becomes a
``session_states`` event for the client's own session (``session.handle``), and what the session
raises becomes the documented reply here.

Deliberate differences from upstream, all safe-side:

* It listens on 127.0.0.1 unless told otherwise (upstream: 0.0.0.0); a SUT on another machine
  needs ``MLPOWER_DIRECTOR_HOST=0.0.0.0`` (compose and Kubernetes set it).
* Upstream serves one connection at a time and waits forever for it. Here every connection has
  its own thread, up to ``max_connections`` (one more is answered ``Error: busy: ...`` and
  closed at once); the client magic must arrive within ``handshake_timeout_s``; a client without
  an open session that stays silent for ``idle_timeout_s`` is disconnected. So an idle or
  half-open socket cannot lock a SUT out. One session runs at a time: a ``new`` while another
  client's session (or a bus or HTTP run) is measuring is answered ``Error: busy: ...``. A
  client's ``session``, ``download`` and ``cleanup`` commands reach only its own session.
* A line longer than ``max_line_bytes`` is refused with ``Error`` (the rest of it is discarded),
  so a client cannot make the director buffer without bound. Client text reaches the logs
  escaped and cut short (``mlpower.logtext.client_text``).
* ``set_ntp`` without a configured NTP command answers ``Error: exception`` (the documented
  failure reply): the director does not claim a clock fix it did not make.
* ``cleanup`` answers ``OK`` but keeps the session folder unless ``cleanup_deletes`` is set: the
  results folder is the lab's archive, not upstream's temporary directory.
* A lost connection aborts its session; the files (server.json, server.log, spl so far) stay.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower.errors import MlpowerError
from mlpower.listen import listen, url_host
from mlpower.logtext import client_text
from mlpower.powerdev import CHUNK_BYTES, CLIENT_MAGIC, FETCH_FILES, LABEL_PATTERN, SERVER_MAGIC, set_keepalive
from mlpower.timeutil import now_utc_s

from .director import Busy, Director
from .powerdev_lines import LineReader, LineTooLong
from .session import MeasurementSession, PhaseError
from .session_analyzer import ServerLog
from .session_states import Abort, Done, Event, InvalidTransition, ManualRanges, StartPhase, StopPhase

log = logging.getLogger(__name__)

NOT_RECORDED = ("done", "download", "cleanup")  # exchanges that neither side's JSON records
LOG_REPLY_LIMIT = 1000
SEND_TIMEOUT_S = 30.0
"""A reply (or a download chunk) the client does not take within this long ends the connection."""

REFUSAL_LOG_S = 10.0
"""Refused connections are logged as a count at most this often."""
DEPARTURE_WAIT_S = 30.0
"""At most this long a ``new`` waits for the session of a client that has gone to finish ending."""

SESSION_EVENTS: dict[tuple[str, ...], Event] = {
    ("start", "ranging"): StartPhase("ranging"),
    ("start", "testing"): StartPhase("testing"),
    ("stop", "ranging"): StopPhase("ranging"),
    ("stop", "testing"): StopPhase("testing"),
    ("done",): Done(),
}
"""``session,<sid>,<words>`` -> the event; ``start,testing,<volts>,<amps>`` carries manual ranges."""


REASON_MAX = 300
"""Characters of a refusal's reason in an ``Error: <reason>`` reply (one line, never a traceback)."""


def reply_for(exc: Exception) -> str:
    """The documented reply for what a command raised."""
    if isinstance(exc, PhaseError):
        refused = exc.refused
        return "Error" if refused is None else f"Error setting {refused.quantity} range: {list(refused.values)}"
    if isinstance(exc, InvalidTransition):
        return "Error"
    if isinstance(exc, Busy):
        return f"Error: busy: {exc}"
    if isinstance(exc, MlpowerError):  # our own messages are fit for a user: say why, on one printable line
        reason = "".join(ch if " " <= ch <= "~" else "?" for ch in " ".join(str(exc).split()))
        return f"Error: {reason[:REASON_MAX]}"
    return "Error: exception"  # a malformed argument (ValueError, IndexError): upstream's reply


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    peer: str
    log: ServerLog = field(default_factory=ServerLog)
    messages: list[dict[str, Any]] = field(default_factory=list)
    session: MeasurementSession | None = None
    last_sid: str | None = None
    recording: bool = True
    gone: threading.Event = field(default_factory=threading.Event)
    """Set as soon as the client has gone, before its session is aborted."""

    @property
    def in_session(self) -> bool:
        return self.session is not None and not self.session.ended


class PowerDevServer:
    def __init__(self, director: Director, *, host: str = "127.0.0.1", port: int = 4950,
                 max_line_bytes: int = 4096, handshake_timeout_s: float = 10.0, idle_timeout_s: float = 120.0,
                 max_connections: int = 64, ntp_command: str = "", cleanup_deletes: bool = False,
                 on_stop_requested: Callable[[], None] | None = None) -> None:
        self._director = director
        self._host, self._requested_port = host, port
        self._max_line = max_line_bytes
        self._handshake_timeout_s, self._idle_timeout_s = handshake_timeout_s, idle_timeout_s
        self._max_connections = max_connections
        self._ntp_command, self._cleanup_deletes = ntp_command, cleanup_deletes
        self._on_stop_requested = on_stop_requested
        self.session: MeasurementSession | None = None
        """The last session a client opened here."""
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._stop_requested = False
        self._lock = threading.Lock()
        self._connections: dict[_Connection, threading.Thread] = {}
        self._refused = 0
        self._refusal_logged_at = -REFUSAL_LOG_S
        self._commands: dict[str, Callable[[_Connection, list[str]], str | None]] = {
            "time": self._time, "set_ntp": self._set_ntp, "stop": self._stop, "new": self._new,
            "session": self._session, "download": self._download, "cleanup": self._cleanup,
        }

    # ----------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        assert self._listener is not None, "server not started"
        return int(self._listener.getsockname()[1])

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def start(self) -> PowerDevServer:
        listener = listen(self._host, self._requested_port, backlog=min(self._max_connections, socket.SOMAXCONN),
                          what="power-dev server")
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, name="powerdev-server", daemon=True)
        self._thread.start()
        log.info("power-dev server listening on %s:%d", url_host(self._host), self.port)
        return self

    def stop(self) -> None:
        self._closing.set()
        with self._lock:
            connections = list(self._connections.items())
        for conn, _ in connections:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, thread in connections:
            if thread is not threading.current_thread():
                thread.join(timeout=30)
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)
        if self._listener is not None:
            self._listener.close()

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                sock, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn = _Connection(sock, f"{address[0]}:{address[1]}")
            with self._lock:
                full = len(self._connections) >= self._max_connections
                if not full:
                    thread = threading.Thread(target=self._run_connection, args=(conn,), daemon=True,
                                              name=f"powerdev-{conn.peer}")
                    self._connections[conn] = thread
            if full:
                self._refuse(conn, f"Error: busy: {self._max_connections} connections are open; try again later")
                continue
            thread.start()

    def _refuse(self, conn: _Connection, reply: str) -> None:
        # a flood of connections must not become a flood of log lines: one line per REFUSAL_LOG_S
        self._refused += 1
        now = time.monotonic()
        if now >= self._refusal_logged_at + REFUSAL_LOG_S:
            log.warning("power-dev: refused %d connection(s) (the last from %s): %s", self._refused, conn.peer, reply)
            self._refused, self._refusal_logged_at = 0, now
        try:
            conn.sock.settimeout(1.0)
            conn.sock.sendall(reply.encode("utf-8") + b"\r\n")
        except OSError:
            pass
        finally:
            conn.sock.close()

    def _run_connection(self, conn: _Connection) -> None:
        try:
            set_keepalive(conn.sock)
            self._handle(conn)
        except OSError as exc:  # the client vanished or stopped reading: its session ends below
            conn.log.error(f"connection from {conn.peer}: {exc}")
        except Exception:  # one broken connection must not take the server down
            log.exception("power-dev connection from %s failed", conn.peer)
        finally:
            conn.gone.set()
            if conn.in_session:
                assert conn.session is not None
                conn.log.error(f"client {conn.peer} disconnected; session {conn.session.run_id} aborted (files kept)")
                conn.session.handle(Abort("client disconnected"))
            try:
                conn.sock.close()
            except OSError:
                pass
            with self._lock:
                self._connections.pop(conn, None)
            if self._stop_requested and not self._closing.is_set():
                log.info("power-dev server stopping: a client asked with 'stop'")
                self._closing.set()
                if self._on_stop_requested is not None:
                    self._on_stop_requested()

    # ----------------------------------------------------------------------- one connection

    def _send_line(self, conn: _Connection, text: str) -> None:
        conn.sock.settimeout(SEND_TIMEOUT_S)
        conn.sock.sendall(text.encode("utf-8") + b"\r\n")

    def _handle(self, conn: _Connection) -> None:
        reader = LineReader(conn.sock, self._max_line)
        conn.log.info(f"connection from {conn.peer}")
        try:
            hello = reader.readline(self._handshake_timeout_s)
        except LineTooLong:
            hello = ""
        except TimeoutError:
            conn.log.error(f"no client magic from {conn.peer} within {self._handshake_timeout_s:g} s; closing")
            return
        if hello is None:
            return
        hello_time = now_utc_s()
        self._send_line(conn, SERVER_MAGIC)
        conn.messages.append({"cmd": hello, "cmd_time": hello_time, "reply": SERVER_MAGIC, "reply_time": now_utc_s()})
        if hello != CLIENT_MAGIC:
            conn.log.error(f"wrong client magic {client_text(hello)}; closing")
            return
        while not self._closing.is_set():
            try:
                line = self._next_line(conn, reader)
            except LineTooLong:
                conn.log.error(f"refused a line longer than {self._max_line} bytes")
                self._send_line(conn, "Error")
                continue
            if line is None:
                return
            cmd_time = now_utc_s()
            conn.log.info(f"Got command: {client_text(line)}")
            reply = self._dispatch(conn, line)
            if reply is None:  # a download: the stream was the answer
                continue
            self._send_line(conn, reply)
            reply_time = now_utc_s()
            shown_reply = reply if len(reply) < LOG_REPLY_LIMIT else reply[:LOG_REPLY_LIMIT] + "..."
            conn.log.info(f"Sending reply: {shown_reply}")
            if conn.recording and line.split(",", 1)[0] not in NOT_RECORDED:
                conn.messages.append({"cmd": line, "cmd_time": cmd_time, "reply": reply, "reply_time": reply_time})

    def _next_line(self, conn: _Connection, reader: LineReader) -> str | None:
        """The client's next line; None when it closed, or was silent for ``idle_timeout_s`` without an
        open session (inside one, the workload may run for hours between two commands)."""
        while True:
            try:
                return reader.readline(self._idle_timeout_s)
            except TimeoutError:
                if not conn.in_session:
                    conn.log.error(f"client {conn.peer} idle for {self._idle_timeout_s:g} s outside a session; "
                                   "closing")
                    return None

    def _dispatch(self, conn: _Connection, line: str) -> str | None:
        fields = line.split(",")
        handler = self._commands.get(fields[0])
        if handler is None:
            return "Error"
        try:
            return handler(conn, fields)
        except (MlpowerError, ValueError, OSError, IndexError) as exc:
            conn.log.error(f"{client_text(line)}: {type(exc).__name__}: {exc}")
            return reply_for(exc)

    # ----------------------------------------------------------------------- commands

    def _time(self, conn: _Connection, fields: list[str]) -> str:
        return str(time.time()) if len(fields) == 1 else "Error"

    def _stop(self, conn: _Connection, fields: list[str]) -> str:
        if len(fields) != 1:
            return "Error"
        self._stop_requested = True
        return "OK"

    def _set_ntp(self, conn: _Connection, fields: list[str]) -> str:
        if len(fields) != 1:
            return "Error"
        if not self._ntp_command:
            conn.log.error("set_ntp: no NTP command configured (MLPOWER_NTP_COMMAND); the clock was left alone")
            return "Error: exception"
        try:
            result = subprocess.run(self._ntp_command, shell=True, capture_output=True, text=True, timeout=30,
                                    check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            conn.log.error(f"set_ntp: {exc}")
            return "Error: exception"
        if result.returncode != 0:
            stderr = client_text(result.stderr.strip())
            conn.log.error(f"set_ntp: {self._ntp_command!r} exited {result.returncode}: {stderr}")
            return "Error: exception"
        time.sleep(1.0)  # as upstream: let the clock settle before the client re-checks
        return "OK"

    def _new(self, conn: _Connection, fields: list[str]) -> str:
        if len(fields) != 3:
            return "Error"
        _, label, client_uuid = fields
        if not LABEL_PATTERN.match(label):
            return "Error: invalid label"
        client_uuid = str(uuid.UUID(client_uuid))  # ValueError -> Error: exception
        if conn.in_session:
            assert conn.session is not None
            conn.log.info(f"dropping session {conn.session.run_id} for a new one")
            conn.session.handle(Abort("replaced by a new session"))
        self._await_departed()
        conn.session = self.session = self._director.open_session(label=label, client_uuid=client_uuid,
                                                                  server_log=conn.log, messages=conn.messages,
                                                                  settings={"driver": "powerdev"})
        conn.last_sid = conn.session.run_id
        conn.recording = True
        return f"OK {conn.session.run_id},{conn.session.identity.server_uuid}"

    def _await_departed(self) -> None:
        """Let the session of a client that has just gone finish ending (its files are being
        written), so that a client reconnecting at once is not told that its own lost session keeps
        the director busy. A session whose client is still connected is not waited for."""
        with self._lock:
            departing = [c.session for c in self._connections if c.gone.is_set() and c.session is not None]
        for session in departing:
            session.wait_ended(DEPARTURE_WAIT_S)

    def _session(self, conn: _Connection, fields: list[str]) -> str:
        if len(fields) < 3:
            return "Error"
        session = conn.session
        if session is None or fields[1] not in ("*", session.run_id):
            return "Error: unknown session"
        words = tuple(fields[2:])
        if len(words) == 4 and words[:2] == ("start", "testing"):
            ranges = ManualRanges(float(words[2]), float(words[3]))  # ValueError -> Error: exception
            session.handle(StartPhase("testing", ranges))
            return "OK"
        event = SESSION_EVENTS.get(words)
        if event is None:
            return "Error Unknown session command"
        session.handle(event)
        if isinstance(event, Done):
            conn.recording = False  # the server's JSON is written; later exchanges are not in it
        return "OK"

    def _session_file(self, conn: _Connection, sid: str, relpath: str) -> Path | None:
        session = conn.session
        if session is None or conn.last_sid is None or sid != conn.last_sid or session.run_id != sid:
            return None
        if relpath not in FETCH_FILES:  # an allow-list: no traversal, no other file of the folder
            return None
        try:  # and a listed name that is a symlink out of the session folder is not the session's file
            path = (session.dir / relpath).resolve(strict=True)
        except OSError:
            return None
        return path if path.is_relative_to(session.dir.resolve()) and path.is_file() else None

    def _download(self, conn: _Connection, fields: list[str]) -> str | None:
        if len(fields) < 3:
            raise ValueError("download needs a session id and a file name")
        path = self._session_file(conn, fields[1], ",".join(fields[2:]))
        if path is None:
            conn.log.error(f"refused download of {client_text(','.join(fields[2:]))}")
            return "Error"
        conn.log.info(f"sending {fields[2]} ({path.stat().st_size} bytes)")
        conn.sock.settimeout(SEND_TIMEOUT_S)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                conn.sock.sendall(f"{len(chunk)}\r\n".encode() + chunk)
        conn.sock.sendall(b"0\r\n")
        return None

    def _cleanup(self, conn: _Connection, fields: list[str]) -> str:
        if len(fields) != 2 or conn.last_sid is None or fields[1] != conn.last_sid:
            return "Error"
        session = conn.session
        if session is not None and session.run_id == fields[1]:
            if not session.ended:
                session.handle(Abort("cleaned up before done"))
            if self._cleanup_deletes:
                shutil.rmtree(session.dir, ignore_errors=True)
                conn.log.info(f"deleted {session.dir}")
            else:
                conn.log.info(f"cleanup: keeping {session.dir} (MLPOWER_CLEANUP_DELETES is off)")
        return "OK"
