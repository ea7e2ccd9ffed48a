"""``/readyz``: 200 while every check passes, 503 naming the failed one; a consumer cut off from
the real broker is not ready until it is attached again."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from mlpower import topology
from mlpower.rabbitmq import RabbitMQBus
from mlpower.readiness import add_readyz, subscriptions_connected
from mlpower.testing import wait_for

from tests.tcp_proxy import TcpProxy


def test_each_check_is_named_and_a_failing_or_raising_one_makes_503() -> None:
    state = {"worker": True}

    def broken() -> bool:
        raise RuntimeError("secret detail /etc/x")

    app = FastAPI()
    add_readyz(app, {"worker": lambda: state["worker"], "broker": lambda: True})
    client = TestClient(app)
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json() == {"status": "ready",
                                                           "checks": {"worker": True, "broker": True}}
    state["worker"] = False
    answer = client.get("/readyz")
    assert answer.status_code == 503 and answer.json()["checks"] == {"worker": False, "broker": True}
    raising = FastAPI()
    add_readyz(raising, {"broker": broken})
    answer = TestClient(raising).get("/readyz")
    assert answer.status_code == 503 and "secret" not in answer.text


def test_no_subscription_yet_is_not_ready() -> None:
    assert subscriptions_connected(lambda: [])() is False


def test_a_consumer_cut_off_from_the_broker_is_not_ready_until_it_is_back(amqp_url: str, unique: str) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    bus = RabbitMQBus(amqp_url.replace(":5672", f":{proxy.port}"), client_name="pytest-readiness")
    spec = topology.QueueSpec(name="", exchange=topology.EVENTS_EXCHANGE, patterns=(f"readiness.{unique}",),
                              durable=False, exclusive=True)
    subscription = bus.subscribe(spec, lambda message, delivery: None)
    app = FastAPI()
    add_readyz(app, {"broker": subscriptions_connected(lambda: [subscription])})
    client = TestClient(app)
    try:
        wait_for(lambda: client.get("/readyz").status_code == 200, what="ready once consuming")
        proxy.cut()
        wait_for(lambda: client.get("/readyz").status_code == 503, what="not ready without the broker")
        assert client.get("/readyz").json()["checks"] == {"broker": False}
        proxy.restore()
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout_s=30, what="ready again")
    finally:
        subscription.close()
        bus.close()
        proxy.close()
