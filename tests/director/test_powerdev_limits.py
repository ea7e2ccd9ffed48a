"""The power-dev server under idle, surplus and hostile connections (loopback, bounded): idle sockets
do not lock a client out, silent ones are closed, one more than the limit is told it is busy, a
second session waits its turn, and client text reaches the log escaped and short."""

from __future__ import annotations

import contextlib
import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.director.director import Director
from mlpower.director.powerdev_server import PowerDevServer
from mlpower.testing import wait_for

from .conftest import fast_settings
from .powerdev_client import ProtocolClient

CLIENT = "mlcommons/power client v3"
SERVER = "mlcommons/power server v3"
IDLE_CONNECTIONS = 50


@contextlib.contextmanager
def serving(tmp_path: Path, source_factory, **limits: float) -> Iterator[PowerDevServer]:  # type: ignore[no-untyped-def]
    director = Director(fast_settings(tmp_path), source_factory=source_factory)
    server = PowerDevServer(director, host="127.0.0.1", port=0, **limits).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def hello(port: int) -> ProtocolClient:
    client = ProtocolClient("127.0.0.1", port, timeout_s=30)
    assert client.command(CLIENT) == SERVER
    return client


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (EOF), without waiting for it."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def a_whole_session(port: int) -> str:
    client = hello(port)
    try:
        reply = client.command(f"new,second,{uuid.uuid4()}") or ""
        assert reply.startswith("OK "), reply
        sid = reply[3:].split(",")[0]
        for mode in ("ranging", "testing"):
            assert client.command(f"session,{sid},start,{mode}") == "OK"
            assert client.command(f"session,{sid},stop,{mode}") == "OK"
        assert client.command(f"session,{sid},done") == "OK"
        assert b'"session_name"' in client.download(sid, "power/server.json")
        return sid
    finally:
        client.close()


def test_a_client_completes_its_session_while_50_idle_connections_are_open(tmp_path: Path, source_factory) -> None:  # type: ignore[no-untyped-def]
    with serving(tmp_path, source_factory) as server:  # the defaults: 10 s handshake, 120 s idle, 64 connections
        silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
                  for _ in range(IDLE_CONNECTIONS // 2)]  # never say hello
        greeted = [hello(server.port) for _ in range(IDLE_CONNECTIONS - len(silent))]  # say hello, then nothing
        try:
            wait_for(lambda: server.connections == IDLE_CONNECTIONS, what="the idle connections to be served")
            sid = a_whole_session(server.port)
            assert (tmp_path / sid / "power" / "server.json").is_file()
            assert not any(closed_by_server(s) for s in silent)  # they were held open all along
            assert all(c.command("time") for c in greeted)  # and are still served
        finally:
            for s in silent:
                s.close()
            for c in greeted:
                c.close()
        wait_for(lambda: server.connections == 0, what="the closed connections to be released")


def test_silent_clients_are_closed_but_not_inside_a_session(tmp_path: Path, source_factory) -> None:  # type: ignore[no-untyped-def]
    with serving(tmp_path, source_factory, handshake_timeout_s=0.3, idle_timeout_s=0.5) as server:
        measuring = hello(server.port)
        sid = (measuring.command(f"new,busy,{uuid.uuid4()}") or "")[3:].split(",")[0]
        assert measuring.command(f"session,{sid},start,ranging") == "OK"
        mute = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        idle = hello(server.port)
        try:
            for _ in range(3):  # a byte now and then does not make a handshake
                slow.sendall(b"m")
            wait_for(lambda: closed_by_server(mute) and closed_by_server(slow), 10, what="the handshake timeout")
            assert idle.read_line() is None  # no session: closed after the idle timeout
            # the client in a session was silent longer than both, and keeps its session
            assert measuring.command("time") is not None
            assert measuring.command(f"session,{sid},stop,ranging") == "OK"
            assert measuring.command(f"session,{sid},done") == "OK"
        finally:
            for s in (mute, slow):
                s.close()
            idle.close()
            measuring.close()
    assert server.session is not None and server.session.status == "success"


def test_connections_over_the_limit_are_told_busy_at_once(tmp_path: Path, source_factory,  # type: ignore[no-untyped-def]
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with serving(tmp_path, source_factory, max_connections=2) as server:
        held = [hello(server.port) for _ in range(2)]
        try:
            for _ in range(5):
                extra = ProtocolClient("127.0.0.1", server.port, timeout_s=5)
                assert extra.read_line() == "Error: busy: 2 connections are open; try again later"
                assert extra.read_line() is None
                extra.close()
            refusals = [r for r in caplog.records if "refused" in r.getMessage()]
            assert len(refusals) == 1  # a flood of connections is not a flood of log lines
            held.pop().close()
            wait_for(lambda: server.connections == 1, what="a connection to be released")
            a_whole_session(server.port)  # room again
        finally:
            for c in held:
                c.close()


def test_a_second_session_is_refused_while_one_runs_and_cannot_touch_it(tmp_path: Path,
                                                                         source_factory) -> None:  # type: ignore[no-untyped-def]
    with serving(tmp_path, source_factory) as server:
        first, second = hello(server.port), hello(server.port)
        try:
            sid = (first.command(f"new,first,{uuid.uuid4()}") or "")[3:].split(",")[0]
            assert first.command(f"session,{sid},start,ranging") == "OK"
            busy = second.command(f"new,second,{uuid.uuid4()}") or ""
            assert busy == f"Error: busy: session {sid} is running"
            assert second.command("time") is not None  # served meanwhile
            for line in ("session,*,done", f"session,{sid},stop,ranging", f"cleanup,{sid}"):
                assert second.command(line) in ("Error: unknown session", "Error")
            assert second.command(f"download,{sid},power/server.json") == "Error"
            assert server.session is not None and server.session.state.value == "ranging"
            assert first.command(f"session,{sid},done") == "OK"
            reply = second.command(f"new,second,{uuid.uuid4()}") or ""
            assert reply.startswith("OK "), reply
        finally:
            first.close()
            second.close()


@pytest.mark.parametrize("hostile", ["\x1b[2J\x1b]0;pwned\x07", "\x00\x08\x08\x08\x0bhidden\rforged", "\u202eevil"])
def test_client_text_reaches_the_log_escaped_and_short(tmp_path: Path, source_factory, hostile: str,  # type: ignore[no-untyped-def]
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlpower.director")
    with serving(tmp_path, source_factory, max_line_bytes=4096) as server:
        client = hello(server.port)
        try:
            client.send((hostile + "x" * 1000).encode())
            assert client.read_line() == "Error"
        finally:
            client.close()
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Got command: ")]
    assert len(logged) == 1
    text = logged[0]
    assert not any(ord(c) < 0x20 or c in "\x7f\u202e" for c in text), text
    assert len(text) < 300 and text.endswith("more characters)")
