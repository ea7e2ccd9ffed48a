"""The director is ready while its bus edge consumes commands and events: a broker outage makes
``/readyz`` 503 (readiness) while ``/healthz`` stays 200 (liveness: no restart)."""

from __future__ import annotations

from pathlib import Path

import httpx
from mlpower.director.service import DirectorService
from mlpower.rabbitmq import RabbitMQBus
from mlpower.testing import wait_for

from tests.director.conftest import fast_settings
from tests.director.fakes import FakeSource
from tests.tcp_proxy import TcpProxy


def test_readyz_follows_the_broker_and_healthz_does_not(amqp_url: str, unique: str, tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    bus = RabbitMQBus(amqp_url.replace(":5672", f":{proxy.port}"), client_name="pytest-director-readyz")
    settings = fast_settings(tmp_path, sut=f"ready{unique}", bus="rabbitmq")
    service = DirectorService(settings, bus=bus, source_factory=lambda resource, interval_s: FakeSource()).start()
    base = f"http://127.0.0.1:{service.http_port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 200, what="ready")
        proxy.cut()
        answer = wait_for(lambda: (a := httpx.get(f"{base}/readyz", timeout=5)).status_code == 503 and a,
                          what="not ready without the broker")
        assert answer.json()["checks"] == {"broker": False}
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        proxy.restore()
        wait_for(lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 200, timeout_s=30, what="ready again")
    finally:
        service.stop()
        bus.close()
        proxy.close()


def test_a_director_without_a_bus_is_ready_once_it_serves(tmp_path: Path) -> None:
    service = DirectorService(fast_settings(tmp_path), source_factory=lambda resource, interval_s: FakeSource())
    service.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{service.http_port}/readyz", timeout=5)
        assert answer.status_code == 200 and answer.json()["checks"] == {}
    finally:
        service.stop()
