"""The client side of the MLCommons power-dev protocol v3 (power-dev-protocol.md §2), against any
compatible server: ours (the director) or MLCommons' ``server.py``.

``PowerDevConnection`` is the edge (a TCP socket with ``\\r\\n`` lines and the chunked download
stream); ``PowerDevClient`` is the command vocabulary with power-dev's message recording;
``run_client_session`` is the client algorithm of §2.6: handshake, time sync, ``new``, then for
ranging and testing: sync, start, run the workload, stop, copy the LoadGen logs; then
``client.log`` and ``client.json``, ``done``, the six downloads, ``cleanup``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower.powerdev import (
    CLIENT_MAGIC,
    DEFAULT_PORT,
    FETCH_FILES,
    LABEL_PATTERN,
    PROTOCOL_VERSION,
    SERVER_MAGIC,
    set_keepalive,
)
from mlpower.sut_agent import clock
from mlpower.sut_agent.client_outputs import SessionLog, client_summary, dump_summary, hash_tree
from mlpower.sut_agent.errors import AgentError, ConnectionLost, ProtocolError, WorkloadError
from mlpower.sut_agent.loadgen_logs import DETAIL_NAME, SUMMARY_NAME
from mlpower.sut_agent.runner import MODES, PhaseOutcome, Publish, no_publish, run_phase
from mlpower.sut_agent.workloads import Workload

log = logging.getLogger(__name__)

DOWNLOAD_PIECE_BYTES = 1 << 20


# --------------------------------------------------------------------------- edge: the socket


class PowerDevConnection:
    """One TCP connection speaking ``\\r\\n``-terminated UTF-8 lines."""

    def __init__(self, host: str, port: int, *, reply_timeout_s: float = 120.0, connect_timeout_s: float = 10.0):
        self.address = f"{host}:{port}"
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout_s)
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to the power-dev server at {self.address}: {exc}") from exc
        self._sock.settimeout(reply_timeout_s)
        set_keepalive(self._sock)
        self._buffer = b""
        self.reply_timeout_s = reply_timeout_s

    def _lost(self, doing: str, why: object) -> ConnectionLost:
        # A reset or broken pipe is the server closing while our next command was in flight (TCP answers
        # unread data with RST): the same event as a clean close, so the user reads the same words.
        if isinstance(why, (ConnectionResetError, BrokenPipeError)):
            why = f"the server closed the connection ({why.strerror or type(why).__name__})"
        return ConnectionLost(f"connection to the power-dev server at {self.address} lost during {doing}: {why}")

    def send_line(self, text: str) -> None:
        try:
            self._sock.sendall(text.encode("utf-8") + b"\r\n")
        except OSError as exc:
            raise self._lost(repr(text), exc) from exc

    def _fill(self, doing: str) -> None:
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError as exc:
            raise ProtocolError(
                f"no answer from {self.address} to {doing} within {self.reply_timeout_s:g} s") from exc
        except OSError as exc:
            raise self._lost(doing, exc) from exc
        if not chunk:
            raise self._lost(doing, "the server closed the connection")
        self._buffer += chunk

    def read_line(self, doing: str) -> str:
        while b"\n" not in self._buffer:
            self._fill(doing)
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", errors="replace").rstrip("\r")

    def read_exact(self, count: int, doing: str) -> bytes:
        while len(self._buffer) < count:
            self._fill(doing)
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def closed_by_peer(self) -> bool:
        """True when the server has closed or reset the connection (checked without blocking)."""
        # A non-blocking peek rather than select(): select refuses descriptors >= 1024 (ValueError).
        timeout = self._sock.gettimeout()
        try:
            self._sock.settimeout(0.0)
            return self._sock.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        finally:
            with contextlib.suppress(OSError):
                self._sock.settimeout(timeout)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- the command vocabulary


class PowerDevClient:
    """power-dev commands with the message record that goes into client.json."""

    def __init__(self, connection: PowerDevConnection) -> None:
        self.connection = connection
        self.messages: list[dict[str, Any]] = []

    def exchange(self, command: str, *, record: bool = True) -> str:
        cmd_time = time.time()
        self.connection.send_line(command)
        reply = self.connection.read_line(repr(command))
        reply_time = time.time()
        if record:
            self.messages.append({"cmd": command, "cmd_time": cmd_time, "reply": reply, "reply_time": reply_time})
        log.info("sent %r, got %r", command, reply if len(reply) < 1000 else reply[:1000] + "...")
        return reply

    def expect_ok(self, command: str, *, record: bool = True) -> None:
        reply = self.exchange(command, record=record)
        if reply != "OK":
            raise ProtocolError(f"power-dev server answered {reply!r} to {command!r} (expected 'OK')")

    def handshake(self) -> None:
        reply = self.exchange(CLIENT_MAGIC)
        if reply != SERVER_MAGIC:
            raise ProtocolError(f"not a power-dev v{PROTOCOL_VERSION} server: it answered {reply!r} to the handshake")

    def remote_time_utc_s(self) -> float:
        reply = self.exchange("time")
        try:
            return float(reply)
        except ValueError:
            raise ProtocolError(f"power-dev server answered {reply!r} to 'time' (expected seconds)") from None

    def new_session(self, label: str, client_uuid: str) -> tuple[str, str]:
        reply = self.exchange(f"new,{label},{client_uuid}")
        if not reply.startswith("OK "):
            raise ProtocolError(f"power-dev server refused the new session: {reply!r}")
        sid, _, server_uuid = reply[3:].partition(",")
        try:
            uuid.UUID(server_uuid)
        except ValueError:
            raise ProtocolError(f"power-dev server sent a bad session reply {reply!r}") from None
        return sid, server_uuid

    def download(self, sid: str, relpath: str, dest: Path) -> int:
        """Fetch one file (chunked stream of §2.4) into ``dest`` via ``dest.tmp``; returns its size."""
        command = f"download,{sid},{relpath}"
        self.connection.send_line(command)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".tmp")
        size = 0
        with open(partial, "wb") as out:
            while True:
                line = self.connection.read_line(repr(command))
                try:
                    length = int(line)
                except ValueError:
                    raise ProtocolError(f"power-dev server refused {command!r}: {line!r}") from None
                if length < 0:
                    raise ProtocolError(f"power-dev server sent a negative chunk length during {command!r}")
                if length == 0:
                    break
                out.write(self.connection.read_exact(length, repr(command)))
                size += length
        partial.replace(dest)
        log.info("downloaded %s (%d bytes)", relpath, size)
        return size


# --------------------------------------------------------------------------- the session


@dataclass(frozen=True)
class ClientOptions:
    host: str
    out_dir: Path
    port: int = DEFAULT_PORT
    label: str = ""
    loadgen_dir: Path | None = None  # where workloads write LoadGen logs; default <out_dir>/loadgen_logs
    ntp_host: str = ""
    duration_s: float = 600.0
    sut: str = "sut"
    allow_clock_offset: bool = False
    max_clock_offset_s: float = clock.MAX_OFFSET_S
    clock_samples: int = 3
    stop_server: bool = False
    reply_timeout_s: float = 120.0
    workload_timeout_s: float | None = None

    @property
    def loadgen_root(self) -> Path:
        return self.loadgen_dir if self.loadgen_dir is not None else self.out_dir / "loadgen_logs"


@dataclass
class ClientSessionResult:
    session_dir: Path
    session_name: str
    client_uuid: str
    server_uuid: str
    outcomes: list[PhaseOutcome] = field(default_factory=list)
    clock_checks: list[dict[str, Any]] = field(default_factory=list)


class _Session:
    """The state of one client session while the algorithm of §2.6 runs."""

    def __init__(self, options: ClientOptions, workload: Workload, publish: Publish,
                 on_offset: Callable[[clock.ClockOffset], None] | None = None) -> None:
        self.options, self.workload, self.publish = options, workload, publish
        self.on_offset = on_offset
        self.phases: dict[str, list[list[float]]] = {}
        self.clock_checks: list[dict[str, Any]] = []
        self.clock_within_limit = True

    def record_phase(self, mode: str) -> None:
        self.phases.setdefault(mode, []).append([time.time(), time.monotonic()])

    def check_clock(self, client: PowerDevClient, stage: str, samples: int) -> None:
        options = self.options
        checks = []
        if samples > 1 and options.ntp_host:
            checks.append(clock.ntp_offset(options.ntp_host))
        director = clock.measure(client.remote_time_utc_s, f"power-dev server {client.connection.address}", samples)
        checks.append(director)
        if self.on_offset is not None:
            self.on_offset(director)  # the director <-> SUT offset (not the NTP one) is the exported one
        for offset in checks:
            within = clock.check_offset(offset, options.max_clock_offset_s, allow=options.allow_clock_offset)
            self.clock_within_limit &= within
            self.clock_checks.append({"stage": stage, "within_limit": within, **offset.as_dict()})
            log.info("clock offset to %s at %s: %+.1f ms (round trip %.1f ms)%s", offset.reference, stage,
                     offset.offset_s * 1000, offset.round_trip_s * 1000,
                     "" if within else " -- OVER THE LIMIT, allowed")


def _validate(options: ClientOptions) -> None:
    if not LABEL_PATTERN.match(options.label):
        raise AgentError(f"invalid label {options.label!r}: only A-Z a-z 0-9 - _ are allowed")
    out, logs = options.out_dir.resolve(), options.loadgen_root.resolve()
    if out == logs or logs in out.parents:
        raise AgentError(f"the output folder {out} must not be the LoadGen log folder {logs} or inside it")
    if not out.parent.is_dir():
        raise AgentError(f"the output folder's parent {out.parent} does not exist")


def run_client_session(
    options: ClientOptions, workload: Workload, publish: Publish = no_publish,
    on_offset: Callable[[clock.ClockOffset], None] | None = None,
) -> ClientSessionResult:
    """One complete power-dev session; raises ``AgentError`` (``ConnectionLost``, ``WorkloadFailed``...) on failure."""
    _validate(options)
    options.out_dir.mkdir(exist_ok=True)
    session_log = SessionLog()
    package_log = logging.getLogger("mlpower.sut_agent")
    previous_level = package_log.level
    if package_log.getEffectiveLevel() > logging.INFO:
        package_log.setLevel(logging.INFO)
    package_log.addHandler(session_log)
    state = _Session(options, workload, publish, on_offset)
    session_dir: Path | None = None
    connection: PowerDevConnection | None = None
    try:
        log.info("mlpower SUT agent, power-dev client v%d; workload %s; LoadGen runs with TZ=UTC",
                 PROTOCOL_VERSION, workload.name)
        connection = PowerDevConnection(options.host, options.port, reply_timeout_s=options.reply_timeout_s)
        client = PowerDevClient(connection)
        client.handshake()
        if options.stop_server:
            client.expect_ok("stop")
        state.check_clock(client, "start", options.clock_samples)
        client_uuid = str(uuid.uuid4())
        sid, server_uuid = client.new_session(options.label, client_uuid)
        log.info("session %s (client uuid %s, server uuid %s)", sid, client_uuid, server_uuid)
        session_dir = options.out_dir / sid
        (session_dir / "power").mkdir(parents=True)  # fails if it exists, as upstream: never mix sessions
        result = ClientSessionResult(session_dir, sid, client_uuid, server_uuid, clock_checks=state.clock_checks)
        for mode, mode_dir in MODES:
            result.outcomes.append(_run_mode(client, state, sid, mode, mode_dir, session_dir))
        _write_client_files(client, state, result)
        client.expect_ok(f"session,{sid},done", record=False)
        for relpath in FETCH_FILES:
            client.download(sid, relpath, session_dir / relpath)
        client.expect_ok(f"cleanup,{sid}", record=False)
        log.info("session %s complete: %s", sid, session_dir)
        return result
    except AgentError as exc:
        log.error("session failed: %s", exc)
        if session_dir is not None and (session_dir / "power").is_dir():
            (session_dir / "power" / "client.log").write_text(session_log.text(), encoding="utf-8")
        raise
    finally:
        if connection is not None:
            connection.close()
        package_log.removeHandler(session_log)
        package_log.setLevel(previous_level)


def _run_mode(client: PowerDevClient, state: _Session, sid: str, mode: str, mode_dir: str,
              session_dir: Path) -> PhaseOutcome:
    options = state.options
    state.check_clock(client, f"{mode} sync", options.clock_samples)
    state.record_phase(mode)
    client.expect_ok(f"session,{sid},start,{mode}")
    state.record_phase(mode)
    state.check_clock(client, f"{mode} started", 1)
    log_dir = options.loadgen_root / sid / mode_dir
    connection = client.connection
    try:
        outcome = run_phase(
            state.workload, mode, log_dir,
            run_id=sid, sut=options.sut, duration_s=options.duration_s, publish=state.publish,
            started_detail=f"workload {state.workload.name}; power-dev session {sid}",
            timeout_s=options.workload_timeout_s,
            abort_reason=lambda: "the power-dev server closed the connection" if connection.closed_by_peer() else None,
        )
    except WorkloadError as exc:
        if connection.closed_by_peer():
            raise ConnectionLost(f"connection to the power-dev server at {connection.address} lost during the "
                                 f"{mode} workload; the workload was stopped") from exc
        raise
    state.check_clock(client, f"{mode} workload done", 1)
    state.record_phase(mode)
    client.expect_ok(f"session,{sid},stop,{mode}")
    state.record_phase(mode)
    state.check_clock(client, f"{mode} stopped", 1)
    target = session_dir / mode_dir
    target.mkdir()
    for name in (DETAIL_NAME, SUMMARY_NAME):
        shutil.copy2(outcome.log_dir / name, target / name)
    return outcome


def _write_client_files(client: PowerDevClient, state: _Session, result: ClientSessionResult) -> None:
    power = result.session_dir / "power"
    log.info("writing client.log and client.json")
    handlers = [h for h in logging.getLogger("mlpower.sut_agent").handlers if isinstance(h, SessionLog)]
    (power / "client.log").write_text(handlers[-1].text() if handlers else "", encoding="utf-8")
    options = state.options
    extra = {
        "agent": "mlpower.sut_agent",
        "workload": state.workload.name,
        "loadgen_timezone": "UTC",
        "loadgen_timezone_note": "built-in and command workloads run with TZ=UTC, so LoadGen's power "
                                 "markers are UTC as power-dev's time-zone contract requires",
        "duration_s": options.duration_s,
        "compliant_durations": all(o.compliant_durations for o in result.outcomes),
        "clock_within_limit": state.clock_within_limit,
        "allow_clock_offset": options.allow_clock_offset,
        "clock": state.clock_checks,
        "runs": {o.mode: o.as_dict() for o in result.outcomes},
    }
    summary = client_summary(
        messages=client.messages,
        client_uuid=result.client_uuid,
        server_uuid=result.server_uuid,
        session_name=result.session_name,
        results=hash_tree(result.session_dir),
        phases=state.phases,
        mlpower=extra,
    )
    (power / "client.json").write_text(dump_summary(summary), encoding="utf-8")
