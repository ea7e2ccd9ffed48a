"""Nothing is lost when the broker goes away mid-run: spooled publishes are replayed in order."""

from __future__ import annotations

import queue
import time
from pathlib import Path

from mlpower import topology
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import SamplePage
from mlpower.spool import SeqTracker, Spool, Spooled

from tests.shared.examples import example_of
from tests.tcp_proxy import TcpProxy


def test_spool_survives_a_restart_and_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.append(Spooled("x", "a", b"\x00one"))
    spool.append(Spooled("x", "b", b"two"))
    with open(path, "a") as handle:
        handle.write('{"exchange": "x", "rout')  # a crash mid-write
    reopened = Spool(path)
    assert len(reopened) == 2
    assert reopened.head() == Spooled("x", "a", b"\x00one")
    reopened.pop_head()
    assert Spool(path).head() == Spooled("x", "b", b"two")


def test_seq_tracker_drops_duplicates_per_run() -> None:
    tracker = SeqTracker(max_runs=2)
    assert tracker.first_time("r1", 0) and tracker.first_time("r1", 1) and tracker.first_time("r2", 0)
    assert not tracker.first_time("r1", 1)
    assert tracker.first_time("r3", 0)  # r1 forgotten, the oldest
    assert tracker.first_time("r1", 1)


def test_pages_published_while_the_broker_is_away_arrive_in_order(amqp_url: str, unique: str,
                                                                  tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    consumer_bus = RabbitMQBus(amqp_url, client_name="pytest-consumer")
    publisher = RabbitMQBus(amqp_url.replace(":5672", f":{proxy.port}"), client_name="pytest-publisher",
                            spool_path=tmp_path / "spool.jsonl")
    received: queue.Queue[int] = queue.Queue()
    key = topology.run_key("lab", "sut", "sim", unique)
    spec = topology.QueueSpec(name="", exchange=topology.RUNS_EXCHANGE, patterns=(key,), durable=False, exclusive=True)
    tracker = SeqTracker()
    subscription = consumer_bus.subscribe(
        spec, lambda m, d: received.put(m.seq) if tracker.first_time(m.run_id, m.seq) else None)
    try:
        pages = [example_of(SamplePage, unique, seq=i, page=i) for i in range(60)]
        for page in pages[:20]:
            publisher.publish(page, key)
        proxy.cut()
        started = time.monotonic()
        for page in pages[20:40]:
            publisher.publish(page, key)
        assert time.monotonic() - started < 10, "publishing must not block while the broker is away"
        assert publisher.pending > 0
        proxy.restore()
        for page in pages[40:]:
            publisher.publish(page, key)
        assert publisher.flush(timeout_s=30)
        got = []
        deadline = time.monotonic() + 15
        while len(got) < 60 and time.monotonic() < deadline:
            try:
                got.append(received.get(timeout=0.2))
            except queue.Empty:
                pass
        assert got == list(range(60))
    finally:
        subscription.close()
        publisher.close()
        consumer_bus.close()
        proxy.close()
