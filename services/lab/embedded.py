"""The whole lab in one process, on one bus: the WT310E simulator on a loopback TCP port following
the SUT, the director driving it over SCPI, the SUT agent running a built-in LoadGen workload,
analytics and figures. ``mlpower demo`` runs on it; tests use it with the real RabbitMQ too.

This is the one module that wires the services together; each keeps its own settings and speaks
to the others only through the bus and the analyzer's network port, exactly as in a full lab.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower import topology
from mlpower.bus import Bus
from mlpower.settings import DEFAULT_DATA_DIR, load_settings


@dataclass(frozen=True)
class LabOptions:
    results_dir: Path
    lab: str = "demo"
    sut: str = "sut1"
    idle_power_w: float = 120.0
    load_power_w: float = 450.0
    sample_interval_s: float = 1.0
    analyzer_sleep_s: float = 1.0
    data_dir: Path = DEFAULT_DATA_DIR
    seed: int = 0
    http: bool = False  # serve the director's control API and /metrics on a free loopback port


@dataclass
class EmbeddedLab:
    """Start with ``start()``; ``stop()`` (or the context manager) stops everything it started."""

    options: LabOptions
    bus: Bus
    simulator: Any = None
    director: Any = None
    agent: Any = None
    analytics: Any = None
    figures: Any = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> EmbeddedLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def analyzer_resource(self) -> str:
        return f"TCPIP0::127.0.0.1::{self.simulator.port}::SOCKET"

    def _queue(self, service: str, exchange: str, patterns: tuple[str, ...]) -> topology.QueueSpec:
        return topology.service_queue(service, exchange, patterns, lab=self.options.lab)

    def start(self) -> EmbeddedLab:
        from mlpower.analytics.service import AnalyticsService
        from mlpower.analytics.settings import AnalyticsSettings
        from mlpower.analyzer_sim import start_simulator
        from mlpower.director.service import DirectorService
        from mlpower.director.settings import DirectorSettings
        from mlpower.figures.service import FiguresService
        from mlpower.sut_agent.bus_mode import AgentService
        from mlpower.sut_agent.settings import Settings as AgentSettings

        o = self.options
        o.results_dir.mkdir(parents=True, exist_ok=True)
        stack = self._stack
        try:
            common = {"bus": "memory", "lab": o.lab, "results_dir": o.results_dir}
            self.analytics = AnalyticsService(
                load_settings(AnalyticsSettings, **common, http_port=0),
                self.bus,
            )
            self.analytics.start()
            stack.callback(self.analytics.stop)

            self.figures = FiguresService(o.data_dir, o.results_dir / "figures", results_dir=o.results_dir,
                                          bus=self.bus, lab=o.lab)
            stack.callback(self.figures.close)
            figures_events = self.bus.subscribe(
                self._queue("figures", topology.EVENTS_EXCHANGE, (topology.event_pattern("run_analyzed", o.lab),)),
                self.figures.on_message)
            stack.callback(figures_events.close)

            self.simulator = start_simulator(
                port=0, load=f"follow:{o.idle_power_w}:{o.load_power_w}", seed=o.seed, bus=self.bus, lab=o.lab,
                sut=o.sut,
            )
            stack.callback(self.simulator.stop)

            director_settings = load_settings(
                DirectorSettings, **common, analyzer=self.analyzer_resource, sut=o.sut, host="127.0.0.1",
                powerdev_port=0, http_port=0, sample_interval_s=o.sample_interval_s,
                analyzer_sleep_s=o.analyzer_sleep_s,
            )
            self.director = DirectorService(director_settings, bus=self.bus, serve_http=o.http).start()
            stack.callback(self.director.stop)

            self.agent = AgentService(load_settings(AgentSettings, **common, sut=o.sut), self.bus).start()
            stack.callback(self.agent.close)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()
