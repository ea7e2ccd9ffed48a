"""The control API and /metrics of the simulator."""

from __future__ import annotations

import re
import socket

import httpx
from mlpower.analyzer_sim import VirtualClock, start_simulator
from prometheus_client import REGISTRY


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert m, f"{name} missing"
    return float(m.group(1))


def test_metrics_true_power_commands_and_own_registry() -> None:
    with start_simulator(port=0, load="constant:250", control_port=0, clock=VirtualClock()) as a, \
            start_simulator(port=0, load="constant:900", control_port=0, clock=VirtualClock()) as b:
        base_a = f"http://127.0.0.1:{a.control_port}"
        text = httpx.get(f"{base_a}/metrics", timeout=5).text
        assert _metric(text, "mlpower_sim_true_power_watts") == 250.0
        assert 240 < _metric(text, "mlpower_sim_reading_power_watts") < 260
        assert "mlpower_analyzer_" not in text  # the director's names, per SUT, are not the simulator's
        with socket.create_connection(("127.0.0.1", a.port), timeout=5) as sock:
            sock.sendall(b"*IDN?;*IDN?\n")
            sock.recv(200)
        text = httpx.get(f"{base_a}/metrics", timeout=5).text
        assert _metric(text, r'mlpower_sim_commands_total\{transport="tcp"\}') == 2
        text_b = httpx.get(f"http://127.0.0.1:{b.control_port}/metrics", timeout=5).text
        assert _metric(text_b, "mlpower_sim_true_power_watts") == 900.0
        assert REGISTRY.get_sample_value("mlpower_sim_true_power_watts") is None  # not the global registry


def test_load_endpoint_changes_the_true_power_and_rejects_bad_specs() -> None:
    with start_simulator(port=0, control_port=0, clock=VirtualClock()) as sim:
        base = f"http://127.0.0.1:{sim.control_port}"
        assert httpx.put(f"{base}/load", json={"spec": "constant:1234"}, timeout=5).json() == {"load": "constant:1234"}
        assert httpx.get(f"{base}/state", timeout=5).json()["true_power_w"] == 1234.0
        bad = httpx.put(f"{base}/load", json={"spec": "constant:lots"}, timeout=5)
        assert bad.status_code == 422 and "constant:lots" in bad.text
        assert httpx.post(f"{base}/faults/burst", json={"kind": "smoke"}, timeout=5).status_code == 422
        assert httpx.get(f"{base}/healthz", timeout=5).json()["scpi_port"] == sim.port


def test_bearer_token_guards_control_but_not_health_and_metrics() -> None:
    with start_simulator(port=0, control_port=0, clock=VirtualClock(), api_token="s3cret") as sim:
        base = f"http://127.0.0.1:{sim.control_port}"
        assert httpx.post(f"{base}/faults/stall", json={"on": True}, timeout=5).status_code == 401
        assert sim.faults.snapshot().stall_s == 0
        ok = httpx.post(f"{base}/faults/stall", json={"on": False}, headers={"Authorization": "Bearer s3cret"},
                        timeout=5)
        assert ok.status_code == 200
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 200
