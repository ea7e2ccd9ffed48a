"""Labs stay apart on one broker: every key and service queue is scoped by MLPOWER_LAB, and each lab
has its own dead-letter queue. Two labs on one vhost, real RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.analytics.service import AnalyticsService, lab_events_queue
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import RunStart
from mlpower.settings import load_settings
from mlpower.testing import wait_for

from tests.analytics.streams import Synth
from tests.analytics.test_energy import constant


def test_every_key_and_service_queue_names_its_lab() -> None:
    assert topology.command_key("director", "sut1", lab="lab-a") == "lab-a.director.sut1"
    assert topology.command_key("agent", "s.1", lab="l#b") == "l_b.agent.s_1"
    assert topology.event_pattern("workload_phase", "lab-a") == "workload_phase.lab-a.*"
    assert topology.lab_runs_pattern("lab-a") == "lab-a.#"
    shards = {lab: [q.name for q in topology.run_shard_queues("analytics", lab)] for lab in ("a", "b")}
    assert shards["a"][0] == "mlpower.a.analytics.runs.s00" and not set(shards["a"]) & set(shards["b"])
    assert all(topology.is_lab_scoped(p, topology.RUNS_EXCHANGE, "a")
               for q in topology.run_shard_queues("analytics", "a") for p in q.patterns)
    assert lab_events_queue("a").name == "mlpower.a.analytics.events"
    assert topology.dead_letter_queue("a") != topology.dead_letter_queue("b")


@pytest.mark.parametrize("exchange, pattern", [
    (topology.RUNS_EXCHANGE, "#"),
    (topology.RUNS_EXCHANGE, "*.sut.#"),
    (topology.RUNS_EXCHANGE, "other.#"),
    (topology.EVENTS_EXCHANGE, "run_completed.#"),
    (topology.EVENTS_EXCHANGE, "#.a.*"),
    (topology.EVENTS_EXCHANGE, "workload_phase.*.sut"),
    (topology.COMMANDS_EXCHANGE, "director.sut1"),
    (topology.COMMANDS_EXCHANGE, "*.director.sut1"),
])
def test_a_service_queue_that_could_hear_another_lab_is_refused(exchange: str, pattern: str) -> None:
    with pytest.raises(ValueError, match="not scoped to lab 'a'"):
        topology.service_queue("svc", exchange, (pattern,), lab="a")
    assert not topology.is_lab_scoped(pattern, exchange, "a")


def test_the_lab_word_of_a_key_is_where_the_scoped_patterns_look() -> None:
    for exchange, key in ((topology.RUNS_EXCHANGE, topology.run_key("a", "sut", "sim", "r1")),
                          (topology.COMMANDS_EXCHANGE, topology.command_key("agent", "sut", lab="a")),
                          (topology.EVENTS_EXCHANGE, "run_completed.a.sut")):
        assert key.split(".")[topology.LAB_WORD[exchange]] == "a"
        assert topology.is_lab_scoped(key, exchange, "a") and not topology.is_lab_scoped(key, exchange, "b")


def _full_run(lab: str, run_id: str) -> list:
    documents = Synth(constant, seed=3).build(run_id)
    return [d.model_copy(update={"lab": lab}) if isinstance(d, RunStart) else d for d in documents]


@pytest.fixture
def two_labs(amqp_url: str, unique: str, tmp_path: Path) -> Iterator[dict[str, AnalyticsService]]:
    """Two analytics services of two labs on one vhost, each on its own lab's durable queues."""
    services: dict[str, AnalyticsService] = {}
    buses = []
    try:
        for lab in (f"a{unique}", f"b{unique}"):
            bus = RabbitMQBus(amqp_url, client_name=f"pytest-{lab}", lab=lab)
            buses.append(bus)
            settings = load_settings(AnalyticsSettings, bus="rabbitmq", lab=lab, results_dir=tmp_path / lab)
            services[lab] = AnalyticsService(settings, bus)
            services[lab].start()
        yield services
    finally:
        for service in services.values():
            service.stop()
        for bus in buses:
            lab = bus.topology.lab
            for queue_name in ([q.name for q in topology.run_shard_queues("analytics", lab)]
                               + [lab_events_queue(lab).name, bus.topology.dead_letter_queue]):
                bus.delete_queue(queue_name)
            bus.close()


@pytest.mark.rabbitmq
def test_two_labs_on_one_broker_each_analyse_only_their_own_runs(two_labs: dict[str, AnalyticsService]) -> None:
    (lab_a, a), (lab_b, b) = two_labs.items()
    for lab, service in two_labs.items():  # each lab publishes on its own bus, as its director would
        for document in _full_run(lab, f"run-{lab}"):
            service.bus.publish(document, topology.run_key(lab, "sut", "sim", document.run_id))
    wait_for(lambda: len(a.store) >= 1 and len(b.store) >= 1, 60, what="both labs' runs analysed")
    assert [row["run_id"] for row in a.store.rows()] == [f"run-{lab_a}"]
    assert [row["run_id"] for row in b.store.rows()] == [f"run-{lab_b}"]
    assert set(a._runs) == {f"run-{lab_a}"} and set(b._runs) == {f"run-{lab_b}"}  # not even seen


@pytest.mark.rabbitmq
def test_each_lab_dead_letters_into_its_own_bounded_queue(two_labs: dict[str, AnalyticsService]) -> None:
    (lab_a, a), (lab_b, b) = two_labs.items()
    bus_a, bus_b = a.bus, b.bus
    bus_a.publish_raw(topology.RUNS_EXCHANGE, topology.run_key(lab_a, "sut", "sim", "poison"), b"not json")
    wait_for(lambda: bus_a.dead_letter_depth() == 1, 30, what="lab a's poison in lab a's dead letters")
    assert bus_b.dead_letter_depth() == 0
    (dead,) = bus_a.dead_letters(keep=True)  # shown, still there
    assert dead.reason.startswith("decode: ") and ".poison." in dead.routing_key
    assert bus_a.dead_letter_depth() == 1
    assert [d.routing_key for d in bus_a.dead_letters()] == [dead.routing_key] and bus_a.dead_letter_depth() == 0
