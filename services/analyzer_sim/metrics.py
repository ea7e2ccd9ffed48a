"""Prometheus metrics of one simulator, in its own registry (several simulators may share a process).

The meter's readings carry ``mlpower_sim_*`` names, never the director's ``mlpower_analyzer_*``:
the director's series are what the lab measured (per SUT), and a simulator exporting the same
names without a ``sut`` label would add empty-SUT rows to the dashboard and the alerts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from mlpower.analyzer_sim import physics
from mlpower.analyzer_sim.instrument import Instrument
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


def _finite_or_nan(read: Callable[[], float]) -> Callable[[], float]:
    def value() -> float:
        try:
            v = read()
        except Exception:  # a scrape must never fail because of one value
            return math.nan
        return v if math.isfinite(v) else math.nan

    return value


class SimMetrics:
    def __init__(self, inst: Instrument, analyzer: str = "simulator",
                 true_power_w: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter("mlpower_sim_commands", "commands served by the simulator",
                                ["transport"], registry=self.registry)
        self.faults_injected = Counter("mlpower_sim_faults_injected", "faults switched on",
                                       ["fault"], registry=self.registry)
        Gauge("mlpower_sim_true_power_watts", "true power drawn by the simulated load",
              registry=self.registry).set_function(_finite_or_nan(true_power_w or (lambda: inst.true_power_w)))

        # one series per element (channel), so a WT332E/WT333E shows each PSU it measures
        def gauge(name: str, doc: str, read: Callable[[int], float]) -> None:
            g = Gauge(name, doc, ["analyzer", "channel"], registry=self.registry)
            for k in range(inst.elements):
                g.labels(analyzer=analyzer, channel=str(k + 1)).set_function(_finite_or_nan(partial(read, k)))

        def r(k: int) -> physics.Reading:
            return inst.readings[k]

        gauge("mlpower_sim_true_channel_power_watts", "true power through this element (its PSU's share)",
              lambda k: inst.true_element_w[k])
        gauge("mlpower_sim_reading_power_watts", "latest active power reading", lambda k: r(k).power_w)
        gauge("mlpower_sim_reading_voltage_volts", "latest RMS voltage reading", lambda k: r(k).voltage_v)
        gauge("mlpower_sim_reading_current_amperes", "latest RMS current reading", lambda k: r(k).current_a)
        gauge("mlpower_sim_reading_power_factor_ratio", "latest power factor", lambda k: r(k).power_factor)
        gauge("mlpower_sim_reading_uncertainty_ratio", "per-sample relative uncertainty",
              lambda k: r(k).uncertainty_w / abs(r(k).power_w) if r(k).power_w else math.nan)
        gauge("mlpower_sim_range_current_amperes", "current range in use",
              lambda k: inst.settings.elements[k].current_range_a)

    def command(self, transport: str) -> None:
        self.commands.labels(transport=transport).inc()

    def fault(self, name: str) -> None:
        self.faults_injected.labels(fault=name).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
