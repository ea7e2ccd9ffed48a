"""The bus contract, run once per adapter: in-memory, and the real RabbitMQ broker."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import pytest
from mlpower import topology
from mlpower.bus import Bus, Delivery, InMemoryBus
from mlpower.schema import (
    MESSAGE_TYPES as ALL_TYPES,
)
from mlpower.schema import (
    Finding,
    Message,
    RunSummary,
    SamplePage,
    encode,
)
from mlpower.testing import wait_for

from tests.shared.examples import example_of


@pytest.fixture(params=["memory", "rabbitmq"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    if request.param == "memory":
        memory = InMemoryBus()
        yield memory
        memory.close()
    else:
        yield request.getfixturevalue("rabbit_bus")


def _collector() -> tuple[queue.Queue[tuple[Message, Delivery]], object]:
    received: queue.Queue[tuple[Message, Delivery]] = queue.Queue()
    return received, lambda message, delivery: received.put((message, delivery))


def _exclusive(exchange: str, pattern: str) -> topology.QueueSpec:
    return topology.QueueSpec(name="", exchange=exchange, patterns=(pattern,), durable=False, exclusive=True)


def _take(received: queue.Queue, n: int, timeout_s: float = 10.0) -> list:
    items, deadline = [], time.monotonic() + timeout_s
    while len(items) < n and time.monotonic() < deadline:
        try:
            items.append(received.get(timeout=0.1))
        except queue.Empty:
            pass
    return items


@pytest.mark.parametrize("message_type", ALL_TYPES, ids=lambda t: t.model_fields["type"].default)
def test_every_message_type_round_trips(bus: Bus, unique: str, message_type: type[Message]) -> None:
    message = example_of(message_type, unique)
    exchange = topology.exchange_for(message)
    received, handler = _collector()
    subscription = bus.subscribe(_exclusive(exchange, f"{unique}.#"), handler)
    try:
        bus.publish(message, f"{unique}.key")
        [(got, delivery)] = _take(received, 1)
        assert got == message
        assert delivery.routing_key == f"{unique}.key"
        assert delivery.exchange == exchange
    finally:
        subscription.close()


def test_run_documents_keep_their_order(bus: Bus, unique: str) -> None:
    received, handler = _collector()
    key = topology.run_key("lab", "sut", "wt310e", unique)
    subscription = bus.subscribe(_exclusive(topology.RUNS_EXCHANGE, key), handler)
    try:
        pages = [example_of(SamplePage, unique, seq=i, page=i) for i in range(200)]
        for page in pages:
            bus.publish(page, key)
        got = [message for message, _ in _take(received, len(pages))]
        assert [p.seq for p in got] == list(range(200))
    finally:
        subscription.close()


def test_undecodable_message_is_dead_lettered_and_consumer_carries_on(bus: Bus, unique: str) -> None:
    bus.dead_letters(limit=10_000)  # start from an empty dead-letter queue
    received, handler = _collector()
    subscription = bus.subscribe(_exclusive(topology.EVENTS_EXCHANGE, f"{unique}.#"), handler)
    try:
        good = example_of(ALL_TYPES[-1], unique)
        bus.publish_raw(topology.EVENTS_EXCHANGE, f"{unique}.bad", b"\xff not json")
        bus.publish_raw(topology.EVENTS_EXCHANGE, f"{unique}.old", encode(good).replace(b'"v":1', b'"v":99'))
        bus.publish(good, f"{unique}.good")
        [(got, _)] = _take(received, 1)
        assert got == good
        dead: list = []

        def both_dead() -> bool:  # dead_letters() takes what it returns: gather until both are in
            dead.extend(d for d in bus.dead_letters() if d.routing_key.startswith(unique))
            return len(dead) >= 2

        wait_for(both_dead, 10, what="two dead letters", poll_s=0.05)
        assert sorted(d.routing_key for d in dead) == [f"{unique}.bad", f"{unique}.old"]
        reasons = {d.routing_key: d.reason for d in dead}
        assert "not JSON" in reasons[f"{unique}.bad"]
        assert "schema version 99" in reasons[f"{unique}.old"]
        assert all(d.exchange == topology.EVENTS_EXCHANGE for d in dead)
    finally:
        subscription.close()


def test_handler_failure_is_dead_lettered_and_consumer_carries_on(bus: Bus, unique: str) -> None:
    bus.dead_letters(limit=10_000)
    received: queue.Queue = queue.Queue()

    def handler(message: Message, delivery: Delivery) -> None:
        if delivery.routing_key.endswith("poison"):
            raise RuntimeError("cannot handle this one")
        received.put(message)

    subscription = bus.subscribe(_exclusive(topology.EVENTS_EXCHANGE, f"{unique}.#"), handler)
    try:
        message = example_of(ALL_TYPES[-1], unique)
        bus.publish(message, f"{unique}.poison")
        bus.publish(message, f"{unique}.fine")
        assert _take(received, 1) == [message]
        dead = wait_for(lambda: [d for d in bus.dead_letters() if d.routing_key == f"{unique}.poison"], 10,
                        what="the poison message's dead letter", poll_s=0.05)
        assert "cannot handle this one" in dead[0].reason
    finally:
        subscription.close()


def test_consumer_that_crashes_before_ack_gets_the_message_redelivered(bus: Bus, unique: str) -> None:
    spec = topology.QueueSpec(name=f"mlpower.test.{unique}", exchange=topology.EVENTS_EXCHANGE,
                              patterns=(f"{unique}.#",), durable=True)
    bus.declare(spec)
    in_handler, release = threading.Event(), threading.Event()

    def crashing(message: Message, delivery: Delivery) -> None:
        in_handler.set()
        release.wait(10)

    first = bus.subscribe(spec, crashing)
    message = example_of(ALL_TYPES[-1], unique)
    try:
        bus.publish(message, f"{unique}.x")
        assert in_handler.wait(10), "the first consumer never got the message"
        first.abort()
        release.set()
        received, handler = _collector()
        second = bus.subscribe(spec, handler)
        try:
            [(got, delivery)] = _take(received, 1)
            assert got == message
            assert delivery.redelivered
        finally:
            second.close()
    finally:
        release.set()
        if hasattr(bus, "delete_queue"):
            bus.delete_queue(spec.name)


def test_messages_published_before_a_consumer_starts_are_kept_in_a_declared_queue(bus: Bus, unique: str) -> None:
    spec = topology.QueueSpec(name=f"mlpower.test.{unique}", exchange=topology.RUNS_EXCHANGE, patterns=(f"{unique}.#",))
    bus.declare(spec)
    try:
        message = example_of(SamplePage, unique)
        bus.publish(message, f"{unique}.a.b.c")
        received, handler = _collector()
        subscription = bus.subscribe(spec, handler)
        try:
            assert [m for m, _ in _take(received, 1)] == [message]
        finally:
            subscription.close()
    finally:
        if hasattr(bus, "delete_queue"):
            bus.delete_queue(spec.name)


def test_examples_cover_nested_models() -> None:
    summary = RunSummary(run_id="r", source="simulator", method="mean of samples")
    finding = Finding(rule="x", severity="error", status="fail", message="m")
    assert summary.run_id == "r" and finding.status == "fail"


def test_a_single_active_consumer_settles_late_and_leaves_the_unsettled_to_the_next_in_order(
        bus: Bus, unique: str) -> None:
    """A run shard: one consumer at a time; what the active one has not settled when it goes is
    delivered to the standby one, in order; what it settled is gone."""
    spec = topology.QueueSpec(name=f"mlpower.test.{unique}", exchange=topology.RUNS_EXCHANGE, patterns=(f"{unique}.#",),
                              prefetch=0, ack="handler", single_active_consumer=True)
    bus.declare(spec)
    pages = [example_of(SamplePage, unique).model_copy(update={"seq": i}) for i in range(6)]
    first_got: queue.Queue[int] = queue.Queue()

    def first_handler(message: Message, delivery: Delivery) -> None:
        seq = message.seq  # type: ignore[attr-defined]
        if seq < 2:
            delivery.settle()
        first_got.put(seq)

    first = bus.subscribe(spec, first_handler)
    received, handler = _collector()
    second = None
    try:
        second = bus.subscribe(spec, handler)
        for page in pages[:5]:
            bus.publish(page, f"{unique}.a.b.c")
        assert [first_got.get(timeout=10) for _ in range(5)] == [0, 1, 2, 3, 4]
        assert received.empty(), "the standby consumer got a message while the active one was there"
        first.abort()
        bus.publish(pages[5], f"{unique}.a.b.c")
        taken = _take(received, 4)
        assert [m.seq for m, _ in taken] == [2, 3, 4, 5]
        assert [d.redelivered for _, d in taken] == [True, True, True, False]
    finally:
        for subscription in (first, second):
            if subscription is not None:
                subscription.close()
        if hasattr(bus, "delete_queue"):
            bus.delete_queue(spec.name)
