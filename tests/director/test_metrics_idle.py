"""Live gauges exist only while a phase measures; counters exist from 0 before the first sample.

Alerts read these series (deploy/prometheus/alerts.yml): a gauge left at the last sample of a
finished run keeps an alert firing, and a counter whose series first appears at 1 hides the
first increase from ``increase()``.
"""

from __future__ import annotations

from pathlib import Path

from mlpower.analyzer_sim.simulator import start_simulator
from mlpower.director.metrics import DirectorMetrics
from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
from mlpower.director.session_states import Done, StartPhase, StopPhase
from mlpower.director.sources import Reading, open_source
from mlpower.testing import wait_for

KEY = {"analyzer": "analyzer1", "channel": "1", "sut": "s1"}


def value(metrics: DirectorMetrics, name: str, labels: dict[str, str] = KEY) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def reading(t_utc_s: float, power_w: float) -> Reading:
    return Reading(t_utc_s, power_w, 230.0, power_w / 230, 0.9, 300.0, 1.0, power_w * 0.02, 0)


def test_counters_exist_at_zero_before_the_first_sample() -> None:
    metrics = DirectorMetrics()
    assert value(metrics, "mlpower_analyzer_sample_gaps_total") is None
    metrics.prepare("analyzer1", 1, "s1")
    assert value(metrics, "mlpower_analyzer_sample_gaps_total") == 0
    assert value(metrics, "mlpower_analyzer_samples_total") == 0
    assert value(metrics, "mlpower_analyzer_energy_joules_total") == 0


def test_idle_removes_the_live_gauges_of_that_sut_only() -> None:
    metrics = DirectorMetrics(sample_interval_s=1.0)
    other = {**KEY, "sut": "s2"}
    metrics.observe("analyzer1", 1, "s1", reading(0.0, 100.0))
    metrics.observe("analyzer1", 1, "s2", reading(0.0, 200.0))
    assert value(metrics, "mlpower_analyzer_uncertainty_ratio") == 0.02
    metrics.idle("s1")
    for name in ("mlpower_analyzer_power_watts", "mlpower_analyzer_uncertainty_ratio",
                 "mlpower_analyzer_voltage_volts", "mlpower_analyzer_range_current_amperes"):
        assert value(metrics, name) is None, name
        assert value(metrics, name, other) is not None, name
    assert value(metrics, "mlpower_analyzer_samples_total") == 1  # counters keep counting across runs
    # the pause between phases is not a gap: the next phase's first sample starts afresh
    metrics.observe("analyzer1", 1, "s1", reading(100.0, 100.0))
    assert value(metrics, "mlpower_analyzer_sample_gaps_total") == 0
    assert value(metrics, "mlpower_analyzer_power_watts") == 100.0


def run_info_phase(metrics: DirectorMetrics) -> str:
    phases = [sample.labels["phase"] for family in metrics.registry.collect() if family.name == "mlpower_run_info"
              for sample in family.samples]
    assert len(phases) == 1, phases
    return phases[0]


def test_a_session_leaves_no_live_value_between_phases_and_after_the_run(tmp_path: Path) -> None:
    metrics = DirectorMetrics(sample_interval_s=0.25)
    sim = start_simulator(port=0, load="constant:250", seed=0)
    try:
        source = open_source(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", update_interval_s=0.25)
        session = MeasurementSession(SessionIdentity("idle", sut="s1"), [("analyzer1", source)],
                                     SessionConfig(tmp_path, sample_interval_s=0.25, sleep_s=0.0, debug=True),
                                     metrics=metrics)
        session.open()
        session.handle(StartPhase("ranging"))
        assert value(metrics, "mlpower_analyzer_sample_gaps_total") == 0  # before any sample
        wait_for(lambda: len(session.readings("ranging")) >= 2, what="ranging samples")
        assert value(metrics, "mlpower_analyzer_power_watts") is not None
        assert run_info_phase(metrics) == "ranging"
        session.handle(StopPhase("ranging"))
        assert value(metrics, "mlpower_analyzer_power_watts") is None
        assert run_info_phase(metrics) == "ranging_done"
        session.handle(StartPhase("testing"))
        wait_for(lambda: len(session.readings("testing")) >= 2, what="testing samples")
        assert value(metrics, "mlpower_analyzer_power_watts") is not None
        session.handle(StopPhase("testing"))
        session.handle(Done())
        assert session.wait_ended(5.0)
    finally:
        sim.stop()
    assert value(metrics, "mlpower_analyzer_power_watts") is None
    assert value(metrics, "mlpower_analyzer_uncertainty_ratio") is None
    assert run_info_phase(metrics) == "success"
    assert value(metrics, "mlpower_analyzer_samples_total") >= 4
