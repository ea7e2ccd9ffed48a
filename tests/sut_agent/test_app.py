"""The agent's HTTP app: /healthz, /metrics (clock offset, phase state, phase counters), /status;
served by ``mlpower agent --bus`` until SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlpower.bus import InMemoryBus
from mlpower.http_serve import HttpServeError, HttpServer
from mlpower.schema import RunWorkloadPhase, WorkloadPhase
from mlpower.settings import load_settings
from mlpower.sut_agent.app import create_app
from mlpower.sut_agent.bus_mode import AgentService
from mlpower.sut_agent.clock import ClockOffset
from mlpower.sut_agent.errors import AgentError
from mlpower.sut_agent.metrics import AgentMetrics
from mlpower.sut_agent.settings import Settings

from .fake_powerdev import FakePowerDevServer


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a Prometheus exposition, None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m[1] == name and ",".join(sorted((m[2] or "").split(","))) == wanted:
            return float(m[3])
    return None


def event(state: str, mode: str = "testing") -> WorkloadPhase:
    return WorkloadPhase(run_id="r1", sut="s1", mode=mode, state=state, t_utc_s=time.time())  # type: ignore[arg-type]


def test_metrics_follow_offsets_and_phases() -> None:
    metrics = AgentMetrics("s1")
    text = metrics.exposition().decode()
    assert sample(text, "mlpower_agent_workload_phase", sut="s1", mlpower_agent_workload_phase="idle") == 1.0
    assert sample(text, "mlpower_clock_offset_seconds", sut="s1") is None  # never measured: no made-up 0
    metrics.observe_offset(ClockOffset(-0.012, 0.004, 3, "power-dev server h:4950"))
    for state in ("started", "power_begin", "power_end", "finished"):
        metrics.observe_phase(event(state, "ranging"))
    metrics.observe_phase(event("started"))
    metrics.observe_phase(event("failed"))
    text = metrics.exposition().decode()
    assert sample(text, "mlpower_clock_offset_seconds", sut="s1") == pytest.approx(-0.012)
    assert sample(text, "mlpower_agent_clock_round_trip_seconds", sut="s1") == pytest.approx(0.004)
    assert sample(text, "mlpower_agent_workload_phase", sut="s1", mlpower_agent_workload_phase="failed") == 1.0
    assert sample(text, "mlpower_agent_workload_phase", sut="s1", mlpower_agent_workload_phase="finished") == 0.0
    assert sample(text, "mlpower_agent_phases_total", sut="s1", mode="ranging") == 1.0
    assert sample(text, "mlpower_agent_phases_total", sut="s1", mode="testing") == 1.0
    assert sample(text, "mlpower_agent_phases_failed_total", sut="s1", mode="testing") == 1.0
    assert sample(text, "mlpower_agent_phases_failed_total", sut="s1", mode="ranging") is None


def test_app_serves_health_metrics_and_status() -> None:
    metrics = AgentMetrics("s1")
    metrics.observe_offset(ClockOffset(0.5, 0.01, 3, "power-dev server h:4950"))
    metrics.observe_phase(event("power_begin"))
    with TestClient(create_app(metrics, mode="bus")) as client:
        assert client.get("/healthz").json() == {"status": "ok", "sut": "s1", "mode": "bus"}
        response = client.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        assert sample(response.text, "mlpower_clock_offset_seconds", sut="s1") == 0.5
        status = client.get("/status").json()
        assert status["phase"] == {"run_id": "r1", "mode": "testing", "state": "power_begin",
                                   "t_utc_s": pytest.approx(time.time(), abs=60)}
        assert status["clock_offset"]["offset_s"] == 0.5 and status["mode"] == "bus"
        assert client.post("/status").status_code == 405  # read-only


def test_bus_mode_exports_the_measured_offset_even_when_it_refuses_the_phase(tmp_path: Path) -> None:
    bus = InMemoryBus()
    with FakePowerDevServer(clock_skew_s=2.0) as server:
        settings = load_settings(Settings, sut="s1", results_dir=tmp_path, server=f"127.0.0.1:{server.port}",
                                 reply_timeout_s=5.0)
        service = AgentService(settings, bus)
        try:
            with pytest.raises(AgentError, match="beyond the 400 ms limit"):
                service.run_command(RunWorkloadPhase(run_id="r1", sut="s1", mode="ranging",
                                                     workload="builtin:offline"))
        finally:
            service.close()
            bus.close()
    text = service.metrics.exposition().decode()
    assert sample(text, "mlpower_clock_offset_seconds", sut="s1") == pytest.approx(2.0, abs=0.2)
    assert sample(text, "mlpower_agent_phases_failed_total", sut="s1", mode="ranging") == 1.0
    assert sample(text, "mlpower_agent_workload_phase", sut="s1", mlpower_agent_workload_phase="failed") == 1.0


def test_http_server_binds_port_zero_and_refuses_a_busy_port() -> None:
    metrics = AgentMetrics("s1")
    with HttpServer(create_app(metrics), "127.0.0.1", 0) as server:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as reply:
            assert json.load(reply)["status"] == "ok"
        with pytest.raises(HttpServeError, match=f"cannot listen on 127.0.0.1:{server.port}"):
            HttpServer(create_app(metrics), "127.0.0.1", server.port)
    assert not server.alive


def test_settings_default_to_loopback_on_8004() -> None:
    settings = load_settings(Settings)
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8004)


@pytest.mark.slow
def test_agent_bus_mode_serves_http_until_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "MLPOWER_BUS": "memory", "MLPOWER_SUT": "s9", "MLPOWER_AGENT_HTTP_PORT": "0",
           "MLPOWER_RESULTS_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "mlpower.sut_agent", "--bus"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = ""
        deadline = time.monotonic() + 60
        while "agent HTTP on" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, f"no HTTP address in {line!r} (exit status {proc.poll()})"
        base = f"http://127.0.0.1:{m[1]}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as reply:
            assert json.load(reply) == {"status": "ok", "sut": "s9", "mode": "bus"}
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        assert sample(text, "mlpower_agent_workload_phase", sut="s9", mlpower_agent_workload_phase="idle") == 1.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
