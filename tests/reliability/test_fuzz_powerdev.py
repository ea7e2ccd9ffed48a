"""Fuzz the power-dev protocol server over a real TCP socket (power-dev-protocol.md §2).

One in-process server on fake analyzers with zero sleeps; each example is one connection carrying
a batch of lines: the documented commands (§2.3) mutated, random text, binary junk and overlong
lines, sometimes cut off mid-line or reset. Every reply must be one of the documented forms, a
download a well-formed chunk stream; after each batch a fresh connection still gets a valid
``time``, the server thread is alive, no thread raised and nothing was logged as a crash.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlpower.director.director import Director
from mlpower.director.outputs import DOWNLOADABLE
from mlpower.director.powerdev_server import CLIENT_MAGIC, SERVER_MAGIC, PowerDevServer
from mlpower.director.session_states import Abort

from tests.director.conftest import fast_settings
from tests.director.fakes import FakeSource
from tests.director.powerdev_client import ProtocolClient
from tests.reliability.ledger import LEDGER
from tests.reliability.mutate import mutated

MAX_LINE = 256
REPLY_FORMS = [re.compile(p) for p in (
    r"OK", r"OK [A-Za-z0-9_\-]+,[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    r"\d+\.\d+(e[+-]\d+)?",  # time: Python str(float)
    r"Error", r"Error: invalid label", r"Error: unknown session", r"Error Unknown session command",
    r"Error: exception", r"Error: [ -~]{1,300}", r"Error setting (voltage|current) range: \[.*\]", r"Error: busy: .+",
)]
SID = "{sid}"  # replaced by the sid of the connection's last successful `new`
LABELS = itertools.count()  # a fresh label per `new`: session ids have one-second resolution
COMMANDS = [
    "time", "set_ntp", "new,{label},{uuid}", "new,{label},{uuid}", "new,bad label!,{uuid}", "new,lbl,not-a-uuid",
    "session,*,start,ranging", "session,*,stop,ranging", "session,*,start,testing", "session,*,stop,testing",
    "session,{sid},start,testing,300,2", "session,{sid},done", "session,{sid},bogus", "session,{sid}",
    "download,{sid},power/server.json", "download,{sid},run_1/spl.txt", "download,{sid},../../etc/passwd",
    "download", "cleanup,{sid}", "cleanup",
]


class CrashLog(logging.Handler):
    """Records logged tracebacks other than a client's vanished socket (OSError)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.crashes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not isinstance(record.exc_info[1], OSError):
            self.crashes.append(self.format(record))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerDevServer]:
    results = tmp_path_factory.mktemp("powerdev-fuzz")
    director = Director(fast_settings(results, max_line_bytes=MAX_LINE, analyzer_sleep_s=0.0),
                        source_factory=lambda resource, interval_s: FakeSource())
    srv = PowerDevServer(director, host="127.0.0.1", port=0, max_line_bytes=MAX_LINE).start()
    yield srv
    srv.stop()
    session = srv.session
    if session is not None and not session.ended:
        session.handle(Abort("test over"))


@pytest.fixture(scope="module")
def watch() -> Iterator[list[str]]:
    """Crashes seen anywhere while the module runs: logged tracebacks and exceptions escaping any thread."""
    found: list[str] = []
    handler = CrashLog()
    handler.crashes = found
    logger = logging.getLogger("mlpower.director")
    logger.addHandler(handler)
    previous = threading.excepthook
    threading.excepthook = lambda args: found.append(
        f"thread {args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: {args.exc_value}")
    yield found
    threading.excepthook = previous
    logger.removeHandler(handler)


def _server_view(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def _keeps_server(line: bytes) -> bool:
    # `stop` makes the server exit after this client (documented); everything else must be survived
    return _server_view(line) != "stop" and b"\n" not in line


commands = st.sampled_from(COMMANDS).map(lambda c: c.replace("{uuid}", str(uuid.UUID(int=7))))
lines = st.one_of(
    commands, commands, commands, mutated(commands), mutated(commands),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.integers(MAX_LINE + 1, 4 * MAX_LINE).map(lambda n: "time" + "x" * n),
    st.integers(MAX_LINE + 1, 70_000).map(lambda n: b"\xff\x00" * (n // 2)),
).map(lambda x: x if isinstance(x, bytes) else x.encode("utf-8", errors="surrogatepass")).filter(_keeps_server)
SCRIPT = [c.encode() for c in ("new,{label}," + str(uuid.UUID(int=9)), "session,*,start,ranging",
                               "session,*,stop,ranging", "session,*,start,testing", "session,*,stop,testing",
                               "session,{sid},done", *(f"download,{{sid}},{name}" for name in DOWNLOADABLE))]
"""A whole valid session (§2.6), so that the fuzzed lines after it also meet the later states."""
ending = st.sampled_from(["close", "close", "half line", "reset", "hello only", "wrong magic"])


def _read_download(client: ProtocolClient, first: bytes) -> None:
    n = int(first)
    while n:
        assert n > 0 and len(client._read_exact(n)) == n
        n = int(client._read_line_bytes() or b"-1")


def _exchange(client: ProtocolClient, line: bytes, sid: str) -> str:
    text = line.replace(SID.encode(), sid.encode()).replace(b"{label}", f"f{next(LABELS)}".encode())
    client.send(text)
    reply = client._read_line_bytes()
    assert reply is not None, f"server closed the connection after {text[:80]!r}"
    view = _server_view(text).split(",")
    if view[0] == "download" and reply.isdigit():
        assert len(view) >= 3 and ",".join(view[2:]) in DOWNLOADABLE, f"downloaded {view!r}"
        _read_download(client, reply)
        return sid
    decoded = reply.decode("utf-8")
    assert any(form.fullmatch(decoded) for form in REPLY_FORMS), f"undocumented reply {decoded!r} to {text[:80]!r}"
    if view[0] == "new" and decoded.startswith("OK "):
        sid = decoded[3:].split(",")[0]
    return sid


def _alive(server: PowerDevServer) -> None:
    client = ProtocolClient("127.0.0.1", server.port, timeout_s=10)
    try:
        assert client.command(CLIENT_MAGIC) == SERVER_MAGIC
        reply = client.command("time")
        assert reply is not None and abs(float(reply) - time.time()) < 5, reply
    finally:
        client.close()
    assert server._thread is not None and server._thread.is_alive()


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batch=st.tuples(st.sampled_from([[], [], SCRIPT]), st.lists(lines, min_size=10, max_size=40)).map(
    lambda t: t[0] + t[1]), end=ending)
def test_fuzzed_lines_get_documented_replies_and_the_server_keeps_serving(server: PowerDevServer, watch: list[str],
                                                                          batch: list[bytes], end: str) -> None:
    LEDGER.fuzzed("power-dev server", len(batch) + 1)
    client = ProtocolClient("127.0.0.1", server.port, timeout_s=10)
    try:
        hello = b"mlcommons/power client v2" if end == "wrong magic" else CLIENT_MAGIC.encode()
        assert client.command(hello) == SERVER_MAGIC  # always, even for a wrong magic (§2.2)
        if end == "wrong magic":
            assert client._read_line_bytes() is None  # and then the server hangs up
        elif end != "hello only":
            sid = "none"
            for line in batch:
                sid = _exchange(client, line, sid)
            if end == "half line":
                client.sock.sendall(b"session,*,sta")
            elif end == "reset":  # RST instead of FIN
                client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except Exception as exc:
        LEDGER.crash(f"power-dev server: {type(exc).__name__}: {exc}")
        raise
    finally:
        client.close()
    _alive(server)


def test_no_crash_was_logged_and_no_thread_died(server: PowerDevServer, watch: list[str]) -> None:
    """After the fuzzing above (same module fixtures): no traceback logged, no thread died."""
    _alive(server)
    for crash in watch:
        LEDGER.crash(f"power-dev server: {crash[:200]}")
    assert watch == []
