"""Undecodable and wrong-version messages on the real broker end in the dead-letter queue, all of them.

Complements test_fuzz_bus.py (the decoder in isolation): a fixed, derandomized batch of junk bodies
and of valid messages with a wrong schema version is published to a live consumer; a private tap
queue on the dead-letter exchange (so the shared dead-letter queue is left to its owners) must
receive each one exactly once with its reason, and the consumer must still deliver a good message.
The shared queue keeps its copies; the bus contract test drains it.
"""

from __future__ import annotations

import json
import queue

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlpower import schema, topology
from mlpower.rabbitmq import REASON_HEADER
from mlpower.testing import wait_for

from tests.reliability.ledger import LEDGER
from tests.shared.examples import example_of

EXAMPLES = [schema.encode(example_of(t, "fuzz")) for t in schema.MESSAGE_TYPES]
BATCH = 150


def _wrong_version(body: bytes, version: int) -> bytes:
    raw = json.loads(body)
    raw["v"] = version
    return json.dumps(raw).encode()


def _bad_bodies() -> list[bytes]:
    bodies: list[bytes] = []

    @settings(max_examples=BATCH, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=200) | st.tuples(st.sampled_from(EXAMPLES), st.integers(-5, 1000).filter(
        lambda v: v != 1)).map(lambda t: _wrong_version(*t)))
    def collect(body: bytes) -> None:
        try:
            schema.decode(body)
        except schema.DecodeError:
            bodies.append(body)

    collect()
    return bodies


@pytest.mark.rabbitmq
def test_junk_and_wrong_versions_are_all_dead_lettered(rabbit_bus: object, amqp_url: str, unique: str) -> None:
    from mlpower.rabbitmq import RabbitMQBus

    assert isinstance(rabbit_bus, RabbitMQBus)
    bodies = _bad_bodies()
    assert len(bodies) > BATCH // 2
    tap_connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    tap = tap_connection.channel()
    tap_queue = tap.queue_declare(queue="", exclusive=True).method.queue
    tap.queue_bind(queue=tap_queue, exchange=rabbit_bus.topology.dead_letter_exchange)
    received: queue.Queue[schema.Message] = queue.Queue()
    spec = topology.QueueSpec(name="", exchange=topology.EVENTS_EXCHANGE, patterns=(f"{unique}.#",),
                              durable=False, exclusive=True)
    subscription = rabbit_bus.subscribe(spec, lambda message, delivery: received.put(message))
    try:
        for i, body in enumerate(bodies):
            rabbit_bus.publish_raw(topology.EVENTS_EXCHANGE, f"{unique}.bad.{i}", body)
        good = example_of(schema.MESSAGE_TYPES[-1], unique)
        rabbit_bus.publish(good, f"{unique}.good")
        assert received.get(timeout=20) == good  # the consumer carried on past every bad one
        dead: dict[str, str] = {}

        def all_dead() -> bool:  # takes what the tap holds now; true once every bad body is there
            while len(dead) < len(bodies):
                method, properties, _ = tap.basic_get(queue=tap_queue, auto_ack=True)
                if method is None:
                    return False
                if method.routing_key.startswith(f"{unique}.bad."):
                    assert method.routing_key not in dead, f"{method.routing_key} dead-lettered twice"
                    dead[method.routing_key] = str((properties.headers or {}).get(REASON_HEADER, ""))
            return True

        wait_for(all_dead, 20, what=f"{len(bodies)} dead letters", poll_s=0.05)
        LEDGER.fuzzed("bus dead-letter (broker)", len(bodies))
        assert sorted(dead) == sorted(f"{unique}.bad.{i}" for i in range(len(bodies)))
        assert all(reason.startswith("decode:") for reason in dead.values()), set(dead.values())
        assert received.empty()  # nothing undecodable reached the handler
    finally:
        subscription.close()
        tap_connection.close()
