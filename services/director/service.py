"""Wiring: settings -> edges (power-dev TCP, HTTP, bus) -> the director. Start, run, stop.

    service = DirectorService(settings, bus=bus).start()
    service.powerdev_port, service.http_port      # the bound ports (useful with port 0)
    service.director.run(plan)                     # a run programmatically (see director.py)
    service.stop()
"""

from __future__ import annotations

import logging
import threading

from mlpower.bus import Bus
from mlpower.http_serve import HttpServer
from mlpower.readiness import subscriptions_connected

from .bus_edge import BusEdge
from .director import Director, SourceFactory
from .http_api import create_app
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
        self._stopping = threading.Event()
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
        # ready while the bus edge consumes its commands and events (a director without a bus
        # is ready once it serves)
        checks = {"broker": subscriptions_connected(lambda: self.bus_edge.subscriptions)} \
            if self.bus_edge is not None else {}
        self.app = create_app(self.director, api_token=settings.api_token, checks=checks)
        # launching PTDaemon for a probe every few seconds would fight the real sessions: not probed
        self._prober = threading.Thread(target=self._probe_loop, name="analyzer-probe", daemon=True)
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
        return self.http.port

    def start(self) -> DirectorService:
        # runs a killed predecessor left open are closed (aborted, samples kept) before any new session
        recovered = recover_interrupted_runs(self.settings, self.bus)
        if self.bus_edge is not None:
            self.bus_edge.start()
            for run in recovered:  # its workload may still run on the SUT: that run is over
                self.bus_edge.stop_workload(run.run_id, run.reason)
        if self.settings.analyzer_probe_s > 0 and self.settings.analyzers and not self.settings.ptd_launch:
            self._prober.start()
        if self.powerdev is not None:
            self.powerdev.start()
        if self._serve_http:
            self.http = HttpServer(self.app, self.settings.host, self.settings.http_port, name="director").start()
        return self

    def _probe_loop(self) -> None:
        while True:  # at once, then every analyzer_probe_s: the gauge is known from the start
            self.director.probe_analyzers()
            if self._stopping.wait(self.settings.analyzer_probe_s):
                return

    def stop(self) -> None:
        self._stopping.set()
        if self.powerdev is not None:
            self.powerdev.stop()
        if self.bus_edge is not None:
            self.bus_edge.stop()
        active = self.director.active
        if active is not None:
            self.director.stop_run(active.run_id, "director stopping")
        self.director.join()
        if self._prober.is_alive():
            self._prober.join(timeout=30)
        if self.http is not None:
            self.http.stop()
