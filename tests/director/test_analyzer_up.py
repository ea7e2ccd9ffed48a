"""``mlpower_analyzer_up{sut,analyzer}``: 1 once the director has opened its analyzer and while
samples arrive, 0 when it cannot open it or loses it (the MlpowerAnalyzerLost alert reads it)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from mlpower.analyzer_sim.simulator import start_simulator
from mlpower.director.metrics import DirectorMetrics
from mlpower.director.session import MeasurementSession, SessionConfig, SessionIdentity
from mlpower.director.session_states import StartPhase
from mlpower.director.sources import open_source
from mlpower.errors import MlpowerError
from mlpower.testing import wait_for


def up(metrics: DirectorMetrics, sut: str = "s1", analyzer: str = "analyzer1") -> float | None:
    return metrics.registry.get_sample_value("mlpower_analyzer_up", {"sut": sut, "analyzer": analyzer})


def session_for(resource: str, tmp_path: Path, metrics: DirectorMetrics) -> MeasurementSession:
    source = open_source(resource, update_interval_s=0.25)
    return MeasurementSession(SessionIdentity("up", sut="s1"), [("analyzer1", source)],
                              SessionConfig(tmp_path, sample_interval_s=0.25, sleep_s=0.0, debug=True),
                              metrics=metrics)


def test_up_while_reading_and_down_once_lost(tmp_path: Path) -> None:
    metrics = DirectorMetrics(sample_interval_s=0.25)
    assert up(metrics) is None  # nothing known before the first session: no made-up value
    sim = start_simulator(port=0, load="constant:250", seed=0)
    try:
        session = session_for(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", tmp_path, metrics)
        session.open()
        assert up(metrics) == 1.0
        session.handle(StartPhase("ranging"))
        wait_for(lambda: len(session.readings("ranging")) >= 2, what="samples arriving")
        assert up(metrics) == 1.0
        sim.faults.disconnect()
        assert session.wait_ended(3.0)
    finally:
        sim.stop()
    assert session.state.value == "failed" and up(metrics) == 0.0


def test_down_when_the_analyzer_cannot_be_opened(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    metrics = DirectorMetrics()
    session = session_for(f"TCPIP0::127.0.0.1::{port}::SOCKET", tmp_path, metrics)
    with pytest.raises(MlpowerError):
        session.open()
    assert up(metrics) == 0.0


def test_an_idle_analyzer_is_probed_so_the_gauge_is_true_between_runs(tmp_path: Path) -> None:
    """No session at all: the director's probe alone keeps the gauge true, and turns it to 0 when
    the analyzer goes away (and back to 1 when it returns), each within a few probe intervals."""
    from mlpower.director.service import DirectorService
    from mlpower.director.settings import DirectorSettings
    from mlpower.settings import load_settings

    sim = start_simulator(port=0, load="constant:250", seed=0)
    settings = load_settings(DirectorSettings, analyzer=f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", sut="s1",
                             results_dir=tmp_path, analyzer_probe_s=0.2, bus="memory", api_token="")
    service = DirectorService(settings, serve_http=False, serve_powerdev=False).start()
    try:
        wait_for(lambda: up(service.metrics) == 1.0, 10, what="the first probe to find the analyzer")
        sim.faults.disconnect()
        wait_for(lambda: up(service.metrics) == 0.0, 15, what="a probe to find the analyzer gone")
        sim.faults.disconnect(False)
        wait_for(lambda: up(service.metrics) == 1.0, 15, what="a probe to find the analyzer back")
        assert service.director.active is None, "probes are not sessions"
    finally:
        service.stop()
        sim.stop()
