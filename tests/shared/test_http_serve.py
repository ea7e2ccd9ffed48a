"""The one way services serve HTTP: loopback, port 0, a busy port named, bounded connections, idle
sockets closed so they cannot hold the connection budget."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from mlpower.http_serve import DEFAULT_HOST, HttpServeError, HttpServer
from mlpower.settings import PROJECT_ROOT
from mlpower.testing import wait_for

HEADER_TIMEOUT_S = 1.0
LIMIT = 8


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer(_app(), limit_concurrency=LIMIT, header_timeout_s=HEADER_TIMEOUT_S, name="test") as running:
        yield running


def _closed_by_server(sock: socket.socket, timeout_s: float) -> float:
    """Seconds until the server closed ``sock`` (recv returns b"")."""
    sock.settimeout(timeout_s)
    started = time.monotonic()
    assert sock.recv(100) == b""
    return time.monotonic() - started


def test_loopback_by_default_port_zero_and_a_busy_port_is_named(server: HttpServer) -> None:
    assert DEFAULT_HOST == "127.0.0.1" and server.host == "127.0.0.1" and server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert httpx.get(f"{server.url}/ping", timeout=5).json() == {"pong": "yes"}
    assert "server" not in httpx.get(f"{server.url}/ping", timeout=5).headers
    with pytest.raises(HttpServeError, match=f"test cannot listen on 127.0.0.1:{server.port}"):
        HttpServer(_app(), port=server.port, name="test")


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as idle:
        waited = _closed_by_server(idle, timeout_s=HEADER_TIMEOUT_S * 10)
    assert HEADER_TIMEOUT_S * 0.5 <= waited <= HEADER_TIMEOUT_S * 5


def test_headers_that_never_end_are_cut_off_too(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        slow.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        time.sleep(HEADER_TIMEOUT_S / 4)  # a duration under test: headers that trickle in, slower than a client
        slow.sendall(b"X-Slow: 1\r\n")
        assert _closed_by_server(slow, timeout_s=HEADER_TIMEOUT_S * 10) <= HEADER_TIMEOUT_S * 5
    with socket.create_connection(("127.0.0.1", server.port)) as kept:  # after one request, a stalled second one
        kept.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"pong":"yes"}'):
            answer += kept.recv(1000)
        assert answer.startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /ping HTTP/1.1\r\n")
        assert _closed_by_server(kept, timeout_s=HEADER_TIMEOUT_S * 10) <= HEADER_TIMEOUT_S * 5


def test_more_connections_than_the_limit_get_503_until_the_idle_ones_are_closed(server: HttpServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(LIMIT + 2)]
    try:
        refused = httpx.get(f"{server.url}/ping", timeout=5)
        assert refused.status_code == 503  # answered at once, not queued
        answer = wait_for(lambda: (a := httpx.get(f"{server.url}/ping", timeout=5)).status_code == 200 and a,
                          HEADER_TIMEOUT_S * 10, what="the idle connections to be closed", poll_s=HEADER_TIMEOUT_S / 5)
        assert answer.json() == {"pong": "yes"}
    finally:
        for sock in idle:
            sock.close()


def test_stop_closes_the_port() -> None:
    server = HttpServer(_app(), name="test").start()
    port = server.port
    server.stop()
    assert not server.alive
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_every_service_but_the_director_serves_http_through_http_serve() -> None:
    """One shared way (limits, timeouts, loopback); the director switches when its refactoring merges."""
    users = []
    for path in sorted((PROJECT_ROOT / "services").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "import uvicorn" in text or "uvicorn." in text:
            users.append(path.relative_to(PROJECT_ROOT).as_posix())
        if path.name == "cli.py" and "create_app(" in text:
            assert "HttpServer(" in text, f"{path} serves an app without mlpower.http_serve"
    assert [p for p in users if not p.startswith("services/director/")] == []
