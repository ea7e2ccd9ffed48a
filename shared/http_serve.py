"""One way to serve a service's HTTP app: loopback by default, bounded, quiet.

    server = HttpServer(app, settings.http_host, settings.http_port, name="analytics").start()
    print(f"analytics HTTP on {server.url}")
    server.wait(stop)                # until ``stop`` is set; HttpServeError if the server died
    server.stop()

What every listener gets here:

* the socket is bound before uvicorn starts, so a busy port fails at once (``HttpServeError``
  naming the address) and port 0 yields the real port without racing uvicorn's start-up;
* ``DEFAULT_HOST`` (127.0.0.1) unless the caller names another address;
* at most ``LIMIT_CONCURRENCY`` connections or requests at once (uvicorn's ``limit_concurrency``:
  more are answered 503 at once instead of queueing), a listen backlog of ``BACKLOG``;
* a connection must finish a request's headers within ``HEADER_TIMEOUT_S`` of connecting or of
  its previous response, else it is closed: uvicorn itself waits forever for the first request,
  so idle sockets would hold the connection budget and every new client would get 503
  (one idle connection per slot is all a denial of service needs);
* idle keep-alive connections are closed after ``KEEP_ALIVE_S``; request bodies are bounded by
  ``http_limits.BodyLimit`` in each app;
* uvicorn's own logging is not configured (the service's logging applies), its access log is off
  (request lines are client text) and it logs warnings only; the caller prints its ready line.

uvicorn runs in a thread, where it installs no signal handlers: the caller's main thread owns
SIGTERM/SIGINT and the order of stopping.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from mlpower.errors import MlpowerError
from mlpower.listen import listen, url_host

DEFAULT_HOST = "127.0.0.1"
LIMIT_CONCURRENCY = 64
BACKLOG = 128
HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5.0
GRACEFUL_SHUTDOWN_S = 5.0


class HttpServeError(MlpowerError):
    """The HTTP app cannot listen, did not start, or stopped on its own."""


def _protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline for each request's headers."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._deadline is None and self._waiting_for_request():
                self._arm()  # the next request has begun to arrive: it gets its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _waiting_for_request(self) -> bool:
            return self.cycle is None or bool(self.cycle.response_complete)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self._waiting_for_request() and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


class HttpServer:
    """A FastAPI (ASGI) app served by uvicorn from a background thread; ``start()``, then ``stop()``."""

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = 0, *, name: str = "HTTP",
                 log_level: str = "warning", limit_concurrency: int = LIMIT_CONCURRENCY,
                 header_timeout_s: float = HEADER_TIMEOUT_S, keep_alive_s: float = KEEP_ALIVE_S,
                 backlog: int = BACKLOG) -> None:
        import uvicorn

        self.name = name
        self._sock = listen(host, port, backlog=backlog, what=name, error=HttpServeError)
        self.host, self.port = host, int(self._sock.getsockname()[1])
        quiet = "warning" if log_level.lower() in ("debug", "info") else log_level.lower()
        config = uvicorn.Config(app, lifespan="off", log_config=None, log_level=quiet, access_log=False,
                                limit_concurrency=limit_concurrency, timeout_keep_alive=int(max(1, keep_alive_s)),
                                backlog=backlog, http=_protocol(header_timeout_s), server_header=False,
                                timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"{name}-http-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> HttpServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise HttpServeError(f"{self.name} did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Serve until ``stop`` is set; an HTTP server that ended on its own raises HttpServeError."""
        while not stop.wait(poll_s):
            if not self.alive:
                raise HttpServeError(f"{self.name} on {self.host}:{self.port} stopped")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=GRACEFUL_SHUTDOWN_S + 5)
        self._sock.close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
