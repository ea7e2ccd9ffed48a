"""During a session, /metrics (scraped over HTTP from the running service) follows the simulator's load."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from mlpower.analyzer_sim.simulator import start_simulator
from mlpower.director.service import DirectorService
from mlpower.testing import wait_for

from .conftest import fast_settings


def _gauge(text: str, name: str) -> float | None:
    m = re.search(rf'^{name}{{analyzer="analyzer1",channel="1",sut="bench"}} (\S+)$', text, re.M)
    return None if m is None else float(m[1])


def _wait_for(http: httpx.Client, predicate, timeout_s: float = 10.0) -> str:  # type: ignore[no-untyped-def]
    def scrape() -> str | None:
        text = http.get("/metrics").text
        return text if predicate(text) else None

    return wait_for(scrape, timeout_s, what="/metrics to match")


def test_metrics_follow_the_simulated_load(tmp_path: Path) -> None:
    sim = start_simulator(port=0, load="constant:100", seed=1)
    settings = fast_settings(tmp_path, analyzer=f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", sample_interval_s=0.25,
                             sut="bench")
    service = DirectorService(settings, serve_powerdev=False).start()
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{service.http_port}", timeout=5)
        assert http.post("/runs", json={"run_id": "metrics", "phase_s": 8, "modes": ["ranging"]}).status_code == 202
        text = _wait_for(http, lambda t: abs((_gauge(t, "mlpower_analyzer_power_watts") or 0) - 100) < 5)
        assert 'mlpower_run_info{benchmark="",phase="ranging",run_id="metrics",scenario="",sut="bench"} 1.0' in text
        energy_before = _gauge(text, "mlpower_analyzer_energy_joules_total") or 0
        samples_before = _gauge(text, "mlpower_analyzer_samples_total") or 0
        sim.set_load("constant:400")
        text = _wait_for(http, lambda t: abs((_gauge(t, "mlpower_analyzer_power_watts") or 0) - 400) < 15)
        assert (_gauge(text, "mlpower_analyzer_energy_joules_total") or 0) > energy_before
        assert (_gauge(text, "mlpower_analyzer_samples_total") or 0) > samples_before
        volts = _gauge(text, "mlpower_analyzer_voltage_volts")
        amps = _gauge(text, "mlpower_analyzer_current_amperes")
        assert volts == pytest.approx(230, rel=0.05) and amps == pytest.approx(400 / 230 / 0.95, rel=0.1)
        assert _gauge(text, "mlpower_analyzer_power_factor_ratio") is not None
        assert _gauge(text, "mlpower_analyzer_range_current_amperes") is not None
        assert http.post("/runs/metrics/stop").json()["stopped"] is True
    finally:
        service.stop()
        sim.stop()
