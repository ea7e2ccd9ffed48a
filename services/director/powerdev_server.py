"""The MLCommons power-dev server protocol (v3) on TCP, driving ``MeasurementSession``s.

Framing (power-dev-protocol.md §2.1): one UTF-8 line per message, ``\\r\\n`` sent, ``\\n`` split
with trailing ``\\r`` stripped, undecodable bytes replaced. One reply line per command except
``download`` (a chunked stream). One connection at a time. Unlike upstream, a line longer than
``max_line_bytes`` is refused with ``Error`` (the rest of it is discarded) so a client cannot
make the director buffer without bound. Other deliberate differences, all safe-side:

* It listens on 127.0.0.1 unless told otherwise (upstream: 0.0.0.0); a SUT on another machine
  needs ``MLPOWER_DIRECTOR_HOST=0.0.0.0`` (compose and Kubernetes set it).

* ``set_ntp`` without a configured NTP command answers ``Error: exception`` (the documented
  failure reply): the director does not claim a clock fix it did not make.
* ``cleanup`` answers ``OK`` but keeps the session folder unless ``cleanup_deletes`` is set: the
  results folder is the lab's archive, not upstream's temporary directory.
* A lost connection aborts the session; its files (server.json, server.log, spl so far) stay.
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
from mlpower.powerdev import CHUNK_BYTES, CLIENT_MAGIC, FETCH_FILES, LABEL_PATTERN, SERVER_MAGIC, set_keepalive
from mlpower.timeutil import now_utc_s

from .runner import MeasurementSession, PhaseError, ServerLog
from .session import InvalidTransition

log = logging.getLogger(__name__)

NOT_RECORDED = ("done", "download", "cleanup")  # exchanges that neither side's JSON records
LOG_REPLY_LIMIT = 1000

SessionFactory = Callable[[str, str, ServerLog, list[dict[str, Any]]], MeasurementSession]
"""(label, client_uuid, server_log, messages) -> an opened session; raises MlpowerError when it cannot."""


class LineTooLong(Exception):
    pass


class LineReader:
    """Lines from a socket, each at most ``max_bytes``; an overlong one raises once, then is skipped."""

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        self._sock, self._max = sock, max_bytes
        self._buffer = b""
        self._discarding = False

    def readline(self) -> str | None:
        """The next line without its line end, or None at EOF."""
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
            chunk = self._sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk


@dataclass
class _Connection:
    sock: socket.socket
    peer: str
    log: ServerLog = field(default_factory=ServerLog)
    messages: list[dict[str, Any]] = field(default_factory=list)
    last_sid: str | None = None
    recording: bool = True


class PowerDevServer:
    def __init__(self, factory: SessionFactory, *, host: str = "127.0.0.1", port: int = 4950,
                 max_line_bytes: int = 4096, ntp_command: str = "", cleanup_deletes: bool = False,
                 on_stop_requested: Callable[[], None] | None = None) -> None:
        self._factory = factory
        self._host, self._requested_port = host, port
        self._max_line = max_line_bytes
        self._ntp_command, self._cleanup_deletes = ntp_command, cleanup_deletes
        self._on_stop_requested = on_stop_requested
        self.session: MeasurementSession | None = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._stop_requested = False
        self._conn: _Connection | None = None
        self._commands: dict[str, Callable[[_Connection, list[str]], str | None]] = {
            "time": self._time, "set_ntp": self._set_ntp, "stop": self._stop, "new": self._new,
            "session": self._session, "download": self._download, "cleanup": self._cleanup,
        }

    # ----------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        assert self._listener is not None, "server not started"
        return int(self._listener.getsockname()[1])

    def start(self) -> PowerDevServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._host, self._requested_port))
        listener.listen(8)
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, name="powerdev-server", daemon=True)
        self._thread.start()
        log.info("power-dev server listening on %s:%d", self._host, self.port)
        return self

    def stop(self) -> None:
        self._closing.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
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
            sock.settimeout(None)
            set_keepalive(sock)
            conn = _Connection(sock, f"{address[0]}:{address[1]}")
            self._conn = conn
            try:
                self._handle(conn)
            except Exception:  # one broken connection must not take the server down
                log.exception("power-dev connection from %s failed", conn.peer)
            finally:
                self._conn = None
                self._connection_lost(conn)
                try:
                    sock.close()
                except OSError:
                    pass
            if self._stop_requested:
                log.info("power-dev server stopping: a client asked with 'stop'")
                self._closing.set()
                if self._on_stop_requested is not None:
                    self._on_stop_requested()

    def _connection_lost(self, conn: _Connection) -> None:
        session = self.session
        if session is not None and not session.ended and session.log is conn.log:
            conn.log.error(f"client {conn.peer} disconnected; session {session.run_id} aborted (files kept)")
            session.abort("client disconnected")

    # ----------------------------------------------------------------------- one connection

    def _send_line(self, conn: _Connection, text: str) -> None:
        conn.sock.sendall(text.encode("utf-8") + b"\r\n")

    def _handle(self, conn: _Connection) -> None:
        reader = LineReader(conn.sock, self._max_line)
        conn.log.info(f"connection from {conn.peer}")
        try:
            hello = reader.readline()
        except LineTooLong:
            hello = ""
        if hello is None:
            return
        hello_time = now_utc_s()
        self._send_line(conn, SERVER_MAGIC)
        conn.messages.append({"cmd": hello, "cmd_time": hello_time, "reply": SERVER_MAGIC, "reply_time": now_utc_s()})
        if hello != CLIENT_MAGIC:
            conn.log.error(f"wrong client magic {hello!r}; closing")
            return
        while not self._closing.is_set():
            try:
                line = reader.readline()
            except LineTooLong:
                conn.log.error(f"refused a line longer than {self._max_line} bytes")
                self._send_line(conn, "Error")
                continue
            except OSError:
                return
            if line is None:
                return
            cmd_time = now_utc_s()
            conn.log.info(f"Got command: {line}")
            reply = self._dispatch(conn, line)
            if reply is None:  # a download: the stream was the answer
                continue
            self._send_line(conn, reply)
            reply_time = now_utc_s()
            shown = reply if len(reply) < LOG_REPLY_LIMIT else reply[:LOG_REPLY_LIMIT] + "..."
            conn.log.info(f"Sending reply: {shown}")
            if conn.recording and line.split(",", 1)[0] not in NOT_RECORDED:
                conn.messages.append({"cmd": line, "cmd_time": cmd_time, "reply": reply, "reply_time": reply_time})

    def _dispatch(self, conn: _Connection, line: str) -> str | None:
        fields = line.split(",")
        handler = self._commands.get(fields[0])
        if handler is None:
            return "Error"
        try:
            return handler(conn, fields)
        except PhaseError as exc:
            conn.log.error(f"{line}: {exc}")
            return exc.reply
        except InvalidTransition as exc:
            conn.log.error(f"{line}: {exc}")
            return "Error"
        except (MlpowerError, ValueError, OSError, IndexError) as exc:
            conn.log.error(f"{line}: {type(exc).__name__}: {exc}")
            return "Error: exception"

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
            conn.log.error(f"set_ntp: {self._ntp_command!r} exited {result.returncode}: {result.stderr.strip()}")
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
        if self.session is not None and not self.session.ended:
            conn.log.info(f"dropping session {self.session.run_id} for a new one")
            self.session.abort("replaced by a new session")
        self.session = self._factory(label, client_uuid, conn.log, conn.messages)
        conn.last_sid = self.session.run_id
        conn.recording = True
        return f"OK {self.session.run_id},{self.session.identity.server_uuid}"

    SESSION_COMMANDS: dict[tuple[str, ...], str] = {
        ("start", "ranging"): "start_ranging",
        ("start", "testing"): "start_testing",
        ("stop", "ranging"): "stop_ranging",
        ("stop", "testing"): "stop_testing",
        ("done",): "done",
    }

    def _session(self, conn: _Connection, fields: list[str]) -> str:
        if len(fields) < 3:
            return "Error"
        session = self.session
        if session is None or fields[1] not in ("*", session.run_id):
            return "Error: unknown session"
        words = tuple(fields[2:])
        if len(words) == 4 and words[:2] == ("start", "testing"):
            volts, amps = float(words[2]), float(words[3])  # ValueError -> Error: exception
            session.start("testing", manual_ranges=(volts, amps))
            return "OK"
        action = self.SESSION_COMMANDS.get(words)
        if action is None:
            return "Error Unknown session command"
        if action == "done":
            session.done()
            conn.recording = False  # the server's JSON is written; later exchanges are not in it
            return "OK"
        verb, mode = action.split("_")
        getattr(session, verb)(mode)
        return "OK"

    def _session_file(self, conn: _Connection, sid: str, relpath: str) -> Path | None:
        session = self.session
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
            conn.log.error(f"refused download of {fields[2:]!r}")
            return "Error"
        conn.log.info(f"sending {fields[2]} ({path.stat().st_size} bytes)")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                conn.sock.sendall(f"{len(chunk)}\r\n".encode() + chunk)
        conn.sock.sendall(b"0\r\n")
        return None

    def _cleanup(self, conn: _Connection, fields: list[str]) -> str:
        if len(fields) != 2 or conn.last_sid is None or fields[1] != conn.last_sid:
            return "Error"
        session = self.session
        if session is not None and session.run_id == fields[1]:
            if not session.ended:
                session.abort("cleaned up before done")
            if self._cleanup_deletes:
                shutil.rmtree(session.dir, ignore_errors=True)
                conn.log.info(f"deleted {session.dir}")
            else:
                conn.log.info(f"cleanup: keeping {session.dir} (MLPOWER_CLEANUP_DELETES is off)")
        return "OK"
