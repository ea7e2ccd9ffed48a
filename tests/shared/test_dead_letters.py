"""The lab's dead-letter queue on the real broker: bounded in length and age, counted for
/metrics, shown and drained by ``mlpower deadletters`` with each reason, and a queue redeclared
with other bounds refused with a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlpower import topology
from mlpower.analytics.app import create_app
from mlpower.analytics.service import AnalyticsService
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.rabbitmq import RabbitMQBus, TopologyMismatch
from mlpower.settings import load_settings
from mlpower.testing import wait_for

pytestmark = pytest.mark.rabbitmq

ESCAPE = "\x1b[2J"


@pytest.fixture
def lab(unique: str) -> str:
    return f"dl{unique}"


@pytest.fixture
def lab_bus(amqp_url: str, lab: str) -> Iterator[RabbitMQBus]:
    bus = RabbitMQBus(amqp_url, client_name="pytest-dead-letters", lab=lab,
                      dead_letter=topology.DeadLetterPolicy(max_messages=3))
    yield bus
    bus.delete_queue(bus.topology.dead_letter_queue)
    bus.close()


def _poison(bus: RabbitMQBus, lab: str, count: int) -> None:
    """``count`` undecodable run documents through a lab-scoped consumer, each dead-lettered with its reason."""
    spec = topology.QueueSpec("", topology.RUNS_EXCHANGE, (topology.lab_runs_pattern(lab),), durable=False,
                              exclusive=True)
    subscription = bus.subscribe(spec, lambda message, delivery: None)
    try:
        for i in range(count):
            bus.publish_raw(topology.RUNS_EXCHANGE, f"{lab}.sut.sim.bad{i}", f"not json {i} {ESCAPE}".encode())
        last = f"{lab}.sut.sim.bad{count - 1}"  # in order: once the last is there, every one was handled
        wait_for(lambda: last in {d.routing_key for d in bus.dead_letters(keep=True)}, 30, what=f"{count} dead letters")
    finally:
        subscription.close()


def test_the_queue_keeps_only_the_newest_up_to_its_length(lab_bus: RabbitMQBus, lab: str) -> None:
    _poison(lab_bus, lab, 5)
    assert [d.routing_key for d in lab_bus.dead_letters(keep=True)] == [f"{lab}.sut.sim.bad{i}" for i in (2, 3, 4)]


def test_old_dead_letters_expire(amqp_url: str, lab: str) -> None:
    bus = RabbitMQBus(amqp_url, client_name="pytest-dead-letters", lab=lab,
                      dead_letter=topology.DeadLetterPolicy(ttl_s=0.3))
    try:
        bus.publish_raw(bus.topology.dead_letter_exchange, "x", b"old")
        wait_for(lambda: bus.dead_letter_depth() == 0 and not bus.dead_letters(keep=True), 30,
                 what="the dead letter to expire")
    finally:
        bus.delete_queue(bus.topology.dead_letter_queue)
        bus.close()


def test_other_bounds_on_an_existing_queue_are_refused_naming_it(lab_bus: RabbitMQBus, amqp_url: str) -> None:
    with pytest.raises(TopologyMismatch) as refused:
        RabbitMQBus(amqp_url, client_name="pytest-other-bounds", lab=lab_bus.topology.lab)  # default bounds
    message = str(refused.value)
    assert lab_bus.topology.dead_letter_queue in message and "PRECONDITION_FAILED" in message
    assert "MLPOWER_DEAD_LETTER_" in message and "delete_queue" in message


def test_analytics_metrics_count_the_labs_dead_letters(lab_bus: RabbitMQBus, lab: str, tmp_path: Path) -> None:
    settings = load_settings(AnalyticsSettings, bus="rabbitmq", lab=lab, results_dir=tmp_path)
    client = TestClient(create_app(AnalyticsService(settings, lab_bus)))
    line = f'mlpower_dead_letter_messages{{lab="{lab}"}}'
    assert f"{line} 0.0" in client.get("/metrics").text
    _poison(lab_bus, lab, 2)
    assert f"{line} 2.0" in client.get("/metrics").text


def _mlpower(lab: str, amqp_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMQP_URL": amqp_url, "MLPOWER_LAB": lab, "MLPOWER_BUS": "rabbitmq",
           "MLPOWER_DEAD_LETTER_MAX_MESSAGES": "3"}
    return subprocess.run([sys.executable, "-m", "mlpower.cli", "deadletters", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_mlpower_deadletters_shows_each_reason_then_drains(lab_bus: RabbitMQBus, lab: str, amqp_url: str) -> None:
    _poison(lab_bus, lab, 2)
    shown = _mlpower(lab, amqp_url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("reason: 'decode: not JSON") == 2, shown.stdout
    assert f"'{lab}.sut.sim.bad0'" in shown.stdout and f"'{lab}.sut.sim.bad1'" in shown.stdout
    assert "\x1b" not in shown.stdout and "\\x1b[2J" in shown.stdout  # the body's escape, escaped
    assert shown.stdout.strip().endswith(f"2 dead letter(s) in {lab_bus.topology.dead_letter_queue}: "
                                         "shown, kept (--drain takes them off)")
    assert f"body ({len(f'not json 0 {ESCAPE}'.encode())} bytes)" in shown.stdout
    assert lab_bus.dead_letter_depth() == 2
    # A reader that only shows keeps the start of each body, and still says each body's whole size.
    previews = lab_bus.dead_letters(keep=True, preview_bytes=5)
    assert [(d.body, d.size_bytes) for d in previews] == [(b"not j", len(f"not json {i} {ESCAPE}".encode()))
                                                          for i in range(2)]
    drained = _mlpower(lab, amqp_url, "--drain", "--limit", "1")
    assert drained.returncode == 0 and drained.stdout.strip().endswith("taken off"), drained.stdout
    assert "1 of 2 dead letter(s)" in drained.stdout and lab_bus.dead_letter_depth() == 1
    assert _mlpower(lab, amqp_url, "--drain").stdout.count("reason: ") == 1
    assert lab_bus.dead_letter_depth() == 0
