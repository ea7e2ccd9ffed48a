"""Wiring: settings -> edges (power-dev TCP, HTTP, bus) -> the director. Start, run, stop.

    service = DirectorService(settings, bus=bus).start()
    service.powerdev_port, service.http_port      # the bound ports (useful with port 0)
    service.director.run(plan)                     # a run programmatically (see director.py)
    service.stop()
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI
from mlpower.bus import Bus

from .bus_edge import BusEdge
from .director import Director, SourceFactory
from .errors import DirectorError
from .http_api import create_app
from .metrics import DirectorMetrics
from .powerdev_server import PowerDevServer
from .recovery import recover_interrupted_runs
from .settings import DirectorSettings

log = logging.getLogger(__name__)


class HttpServer:
    """The HTTP API on uvicorn in a thread; ``start`` returns once it listens. The one place the
    director starts HTTP."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="director-http", daemon=True)
        self._where = f"{host}:{port}"

    def start(self, timeout_s: float = 10.0) -> HttpServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)  # uvicorn offers no event for "listening"
        if not self._server.started:
            raise DirectorError(f"HTTP API could not start on {self._where}")
        return self

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class DirectorService:
    def __init__(self, settings: DirectorSettings, *, bus: Bus | None = None,
                 source_factory: SourceFactory | None = None, serve_http: bool = True,
                 serve_powerdev: bool = True) -> None:
        self.settings = settings
        self.bus = bus
        self._stop_requested = threading.Event()
        self.metrics = DirectorMetrics(settings.sample_interval_s)
        self.director = Director(settings, bus=bus, metrics=self.metrics, source_factory=source_factory)
        self.bus_edge = BusEdge(self.director, bus) if bus is not None and settings.bus_mode else None
        self.powerdev = PowerDevServer(
            self.director, host=settings.host, port=settings.powerdev_port, max_line_bytes=settings.max_line_bytes,
            handshake_timeout_s=settings.powerdev_handshake_timeout_s,
            idle_timeout_s=settings.powerdev_idle_timeout_s, max_connections=settings.powerdev_max_connections,
            ntp_command=settings.ntp_command, cleanup_deletes=settings.cleanup_deletes,
            on_stop_requested=self._stop_requested.set,
        ) if serve_powerdev else None
        self.app = create_app(self.director, api_token=settings.api_token)
        self._serve_http = serve_http
        self.http: HttpServer | None = None

    @property
    def stop_requested(self) -> threading.Event:
        """Set when a power-dev client sent ``stop`` and disconnected (the process should exit)."""
        return self._stop_requested

    @property
    def powerdev_port(self) -> int:
        assert self.powerdev is not None
        return self.powerdev.port

    @property
    def http_port(self) -> int:
        assert self.http is not None, "HTTP not started"
        return self.http.address[1]

    def start(self) -> DirectorService:
        # runs a killed predecessor left open are closed (aborted, samples kept) before any new session
        recover_interrupted_runs(self.settings, self.bus)
        if self.bus_edge is not None:
            self.bus_edge.start()
        if self.powerdev is not None:
            self.powerdev.start()
        if self._serve_http:
            self.http = HttpServer(self.app, self.settings.host, self.settings.http_port).start()
        return self

    def stop(self) -> None:
        if self.powerdev is not None:
            self.powerdev.stop()
        if self.bus_edge is not None:
            self.bus_edge.stop()
        active = self.director.active
        if active is not None:
            self.director.stop_run(active.run_id, "director stopping")
        self.director.join()
        if self.http is not None:
            self.http.stop()
