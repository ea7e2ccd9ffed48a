"""Where the services listen, and the limits: power-dev line length, HTTP body size, one session at a time."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.analyzer_sim.settings import Settings as SimulatorSettings
from mlpower.director.powerdev_server import PowerDevServer
from mlpower.director.service import DirectorService
from mlpower.director.settings import DirectorSettings
from mlpower.figures.settings import FiguresSettings
from mlpower.http_limits import MAX_BODY_BYTES
from mlpower.settings import PROJECT_ROOT, load_settings
from mlpower.testing import wait_for

from tests.director.fakes import FakeSource
from tests.director.powerdev_client import ProtocolClient

HOST_VARIABLES = {"director": "MLPOWER_DIRECTOR_HOST", "analytics": "MLPOWER_ANALYTICS_HOST",
                  "figures": "MLPOWER_FIGURES_HOST", "analyzer-sim": "MLPOWER_SIM_HOST"}


def _other_local_address() -> str | None:
    """A non-loopback address of this machine, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def director(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DirectorService]:
    for name in ("MLPOWER_DIRECTOR_HOST", "MLPOWER_API_TOKEN", "MLPOWER_API_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(DirectorSettings, analyzer="fake://1", results_dir=tmp_path, powerdev_port=0,
                             http_port=0, bus="memory", analyzer_sleep_s=0.0, sample_interval_s=0.1,
                             max_line_bytes=256)
    service = DirectorService(settings, source_factory=lambda resource, interval_s: FakeSource()).start()
    yield service
    active = service.director.active
    if active is not None and not active.ended:
        service.director.stop_run(active.run_id, "test over")
    service.stop()


def test_servers_listen_on_loopback_unless_configured(director: DirectorService,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert director.settings.host == "127.0.0.1"
    assert director.powerdev is not None and director.powerdev._listener is not None
    assert director.powerdev._listener.getsockname()[0] == "127.0.0.1"
    assert director.http is not None and director.http.host == "127.0.0.1"
    for name in ("MLPOWER_ANALYTICS_HOST", "MLPOWER_FIGURES_HOST", "MLPOWER_SIM_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings(AnalyticsSettings, bus="memory").http_host == "127.0.0.1"
    assert load_settings(FiguresSettings, bus="memory").http_host == "127.0.0.1"
    assert load_settings(SimulatorSettings, bus="memory").host == "127.0.0.1"
    plain = PowerDevServer(None, port=0).start()  # type: ignore[arg-type]
    try:
        assert plain._listener is not None and plain._listener.getsockname()[0] == "127.0.0.1"
    finally:
        plain.stop()
    other = _other_local_address()
    if other is not None:  # the machine has another address: nothing answers there
        for port in (director.powerdev_port, director.http_port):
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()


def test_compose_and_kubernetes_open_the_services_to_their_network_explicitly() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    for service, variable in HOST_VARIABLES.items():
        assert compose["services"][service]["environment"][variable] == "0.0.0.0", service
    for name, variable in (("analytics", "MLPOWER_ANALYTICS_HOST"), ("figures", "MLPOWER_FIGURES_HOST")):
        manifests = [m for m in yaml.safe_load_all((PROJECT_ROOT / "deploy" / "k8s" / "base" / f"{name}.yaml")
                                                    .read_text(encoding="utf-8")) if m]
        env = {e["name"]: e.get("value") for m in manifests if m.get("kind") == "Deployment"
               for c in m["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
        assert env.get(variable) == "0.0.0.0", name


def test_powerdev_refuses_overlong_lines_and_keeps_serving(director: DirectorService) -> None:
    client = ProtocolClient("127.0.0.1", director.powerdev_port, timeout_s=10)
    try:
        assert client.command("mlcommons/power client v3") == "mlcommons/power server v3"
        assert client.command("time" + "x" * 300) == "Error"
        assert client.command("x" * 5_000_000) == "Error"  # 5 MB in one line: refused, not buffered
        reply = client.command("time")
        assert reply is not None and abs(float(reply) - time.time()) < 5
    finally:
        client.close()


def test_http_bodies_over_the_limit_get_413(director: DirectorService) -> None:
    url = f"http://127.0.0.1:{director.http_port}/runs"
    big = b'{"benchmark": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    response = httpx.post(url, content=big, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what streams in
        yield b'{"benchmark": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    response = httpx.post(url, content=chunks(), headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    assert director.director.active is None  # nothing was started by either
    assert httpx.get(f"http://127.0.0.1:{director.http_port}/healthz", timeout=5).status_code == 200


def test_one_session_at_a_time(director: DirectorService) -> None:
    base = f"http://127.0.0.1:{director.http_port}"
    first = httpx.post(f"{base}/runs", json={"phase_s": 30}, timeout=10)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    second = httpx.post(f"{base}/runs", json={"phase_s": 30}, timeout=10)
    assert second.status_code == 409 and run_id in second.json()["detail"]  # names the running session
    client = ProtocolClient("127.0.0.1", director.powerdev_port, timeout_s=10)
    try:  # a power-dev client cannot take the analyzer away from the running session either
        assert client.command("mlcommons/power client v3") == "mlcommons/power server v3"
        assert client.command(f"new,late,{uuid.uuid4()}") == f"Error: busy: session {run_id} is running"
    finally:
        client.close()
    assert httpx.get(f"{base}/status", timeout=5).json()["run"]["run_id"] == run_id
    stopped = httpx.post(f"{base}/runs/{run_id}/stop", timeout=10)
    assert stopped.status_code == 200
    wait_for(lambda: director.director.active is None or director.director.active.ended, 10,
             what="the stopped run to end")
    assert httpx.post(f"{base}/runs", json={"phase_s": 30}, timeout=10).status_code == 202  # free again
