"""Wiring: settings -> edges (power-dev TCP, HTTP, bus) -> the director. Start, run, stop.

    service = DirectorService(settings, bus=bus).start()
    service.powerdev_port, service.http_port      # the bound ports (useful with port 0)
    service.director.new_session(...)              # a session programmatically (see runner.py)
    service.stop()
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from mlpower.bus import Bus

from .app import create_app
from .bus_mode import BusMode
from .director import Director, SourceFactory
from .errors import DirectorError
from .metrics import DirectorMetrics
from .powerdev_server import PowerDevServer
from .recovery import recover_interrupted_runs
from .settings import DirectorSettings

log = logging.getLogger(__name__)


class DirectorService:
    def __init__(self, settings: DirectorSettings, *, bus: Bus | None = None,
                 source_factory: SourceFactory | None = None, serve_http: bool = True,
                 serve_powerdev: bool = True) -> None:
        self.settings = settings
        self.bus = bus
        self._stop_requested = threading.Event()
        self.metrics = DirectorMetrics(settings.sample_interval_s)
        self.director = Director(settings, bus=bus, metrics=self.metrics, source_factory=source_factory)
        self.bus_mode = BusMode(self.director, bus) if bus is not None and settings.bus_mode else None
        self.powerdev = PowerDevServer(
            self.director.powerdev_factory, host=settings.host, port=settings.powerdev_port,
            max_line_bytes=settings.max_line_bytes, ntp_command=settings.ntp_command,
            cleanup_deletes=settings.cleanup_deletes, on_stop_requested=self._stop_requested.set,
        ) if serve_powerdev else None
        self.app = create_app(self.director, api_token=settings.api_token, bus_mode=self.bus_mode)
        self._serve_http = serve_http
        self._uvicorn: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None

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
        assert self._uvicorn is not None and self._uvicorn.servers, "HTTP not started"
        return int(self._uvicorn.servers[0].sockets[0].getsockname()[1])

    def start(self) -> DirectorService:
        # runs a killed predecessor left open are closed (aborted, samples kept) before any new session
        recover_interrupted_runs(self.settings, self.bus)
        if self.bus_mode is not None:
            self.bus_mode.start()
        if self.powerdev is not None:
            self.powerdev.start()
        if self._serve_http:
            config = uvicorn.Config(self.app, host=self.settings.host, port=self.settings.http_port,
                                    log_level="warning", lifespan="off")
            self._uvicorn = uvicorn.Server(config)
            self._http_thread = threading.Thread(target=self._uvicorn.run, name="director-http", daemon=True)
            self._http_thread.start()
            deadline = time.monotonic() + 10
            while not self._uvicorn.started and time.monotonic() < deadline and self._http_thread.is_alive():
                time.sleep(0.02)
            if not self._uvicorn.started:
                raise DirectorError(f"HTTP API could not start on {self.settings.host}:{self.settings.http_port}")
        return self

    def stop(self) -> None:
        if self.powerdev is not None:
            self.powerdev.stop()
        if self.bus_mode is not None:
            self.bus_mode.stop()
        session = self.director.active
        if session is not None and not session.ended:
            session.abort("director stopping")
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if self._http_thread is not None:
                self._http_thread.join(timeout=10)
