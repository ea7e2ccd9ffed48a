"""Prometheus metrics of the director (names from ecosystem.md §1.3), one registry per instance.

Labels ``analyzer``, ``channel``, ``sut``; the run's metadata lives on ``mlpower_run_info`` only
(high-cardinality labels do not belong on every series). Flagged samples (missing, overrange)
update ``samples_total`` and ``sample_gaps_total`` but never the power gauge or the energy counter.

Between phases and runs nothing is measured, so nothing may look measured: ``idle`` removes the
live gauges of a SUT (power, voltage, current, power factor, uncertainty, ranges), so a dashboard
shows no value and an alert on them resolves instead of firing on the last sample of a finished
run. The counters are created at 0 when a phase starts (``prepare``): a counter whose series
first appears at 1 hides that first increase from ``increase()``, and the first gap would go
unseen.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .merge import usable_power
from .sources import Reading

CONTENT_TYPE = CONTENT_TYPE_LATEST
LABELS = ("analyzer", "channel", "sut")
GAP_FACTOR = 1.5  # a sample later than 1.5 intervals after the previous one means one was missed


class DirectorMetrics:
    def __init__(self, sample_interval_s: float = 1.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.interval_s = sample_interval_s
        r = self.registry
        self.power = Gauge("mlpower_analyzer_power_watts", "latest active power sample", LABELS, registry=r)
        self.energy = Counter("mlpower_analyzer_energy_joules", "integrated energy (power x time between samples)",
                              LABELS, registry=r)
        self.voltage = Gauge("mlpower_analyzer_voltage_volts", "RMS voltage", LABELS, registry=r)
        self.current = Gauge("mlpower_analyzer_current_amperes", "RMS current", LABELS, registry=r)
        self.pf = Gauge("mlpower_analyzer_power_factor_ratio", "power factor", LABELS, registry=r)
        self.uncertainty = Gauge("mlpower_analyzer_uncertainty_ratio",
                                 "per-sample relative uncertainty of power (0.01 = 1 %)", LABELS, registry=r)
        self.range_current = Gauge("mlpower_analyzer_range_current_amperes", "current range in use (0 = auto)",
                                   LABELS, registry=r)
        self.range_voltage = Gauge("mlpower_analyzer_range_voltage_volts", "voltage range in use (0 = auto)",
                                   LABELS, registry=r)
        self.samples = Counter("mlpower_analyzer_samples", "samples read", LABELS, registry=r)
        self.gaps = Counter("mlpower_analyzer_sample_gaps", "missing samples (no value, or a late sample)",
                            LABELS, registry=r)
        self.run_info = Gauge("mlpower_run_info", "the current run (value 1)",
                              ("run_id", "sut", "benchmark", "scenario", "phase"), registry=r)
        # Per analyzer, not per channel: it is the link to the instrument that is up or lost.
        self.analyzer_up = Gauge("mlpower_analyzer_up",
                                 "1 while the director reads this analyzer (opened, samples arriving, or "
                                 "between runs a probe opened it), 0 once it failed to open or was lost",
                                 ("sut", "analyzer"), registry=r)
        self._live_gauges = (self.power, self.voltage, self.current, self.pf, self.uncertainty,
                             self.range_current, self.range_voltage)
        self._last: dict[tuple[str, str, str], Reading] = {}
        self._live: set[tuple[str, str, str]] = set()  # label sets the live gauges carry now
        self._lock = threading.Lock()

    def prepare(self, analyzer: str, channel: int | str, sut: str) -> None:
        """A phase starts on this channel: its counters exist from 0 on, before the first sample."""
        key = (analyzer, str(channel), sut)
        with self._lock:
            for counter in (self.samples, self.gaps, self.energy):
                counter.labels(*key)

    def idle(self, sut: str) -> None:
        """Nothing is measured on ``sut`` now (between phases, after a run): no live value stays."""
        with self._lock:
            for key in [key for key in self._live if key[2] == sut]:
                for gauge in self._live_gauges:
                    try:
                        gauge.remove(*key)
                    except KeyError:  # this gauge never got a value for the key (a flagged sample)
                        pass
                self._live.discard(key)
                # the next phase's first sample is not "late" because of the pause between phases
                self._last.pop(key, None)

    def set_analyzer_up(self, analyzer: str, sut: str, up: bool) -> None:
        with self._lock:
            self.analyzer_up.labels(sut, analyzer).set(1 if up else 0)

    def observe(self, analyzer: str, channel: int | str, sut: str, reading: Reading) -> None:
        key = (analyzer, str(channel), sut)
        with self._lock:
            self.analyzer_up.labels(sut, analyzer).set(1)  # a reading came back, flagged or not
            previous = self._last.get(key)
            self._last[key] = reading
            self._live.add(key)
            power = usable_power(reading)
            self.samples.labels(*key).inc()
            late = previous is not None and reading.t_utc_s - previous.t_utc_s > GAP_FACTOR * self.interval_s
            gaps = self.gaps.labels(*key)  # exists (at 0) from the first sample on
            if power is None or late:
                gaps.inc()
            if power is not None:
                self.power.labels(*key).set(power)
                # rectangle rule with the sample's own interval (capped, so a long pause adds no phantom energy)
                if previous is not None:
                    dt_s = min(max(reading.t_utc_s - previous.t_utc_s, 0.0), GAP_FACTOR * self.interval_s)
                    self.energy.labels(*key).inc(power * dt_s)
                if reading.uncertainty_w is not None and power > 0:
                    self.uncertainty.labels(*key).set(reading.uncertainty_w / power)
            for gauge, value in ((self.voltage, reading.voltage_v), (self.current, reading.current_a),
                                 (self.pf, reading.power_factor)):
                if value is not None:
                    gauge.labels(*key).set(value)
            self.range_current.labels(*key).set(reading.current_range_a or 0.0)
            self.range_voltage.labels(*key).set(reading.voltage_range_v or 0.0)

    def set_run(self, run_id: str, sut: str, benchmark: str, scenario: str, phase: str) -> None:
        with self._lock:
            self.run_info.clear()
            self.run_info.labels(run_id, sut, benchmark, scenario, phase).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
