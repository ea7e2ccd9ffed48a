"""Fault: RabbitMQ restarted in the middle of a run.

A real RabbitMQ node, a real ``mlpower sim`` and a real ``mlpower director`` (with a spool folder)
measure a timed run; the broker is stopped and started (``rabbitmqctl stop_app``/``start_app``)
while the director publishes sample pages. A consumer that lives through the restart must see
every document the director wrote to its ``documents.jsonl`` exactly once after dropping
replayed duplicates by (run_id, seq): no page lost, none doubled.

The node is a private one (own port and data folder): stopping the shared broker would break
every other test and service on it. It is always stopped in a finaliser, even on failure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import RunStop, SamplePage

from tests.reliability.collect import RunCollector, file_documents, page_samples
from tests.reliability.ledger import LEDGER
from tests.reliability.procs import (
    Broker,
    check_no_crash,
    director_env,
    director_url,
    http,
    sim_resource,
    simulator,
    start_director,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def broker(unique: str) -> Iterator[Broker]:
    why_not = Broker.available()
    if why_not is not None:
        pytest.skip(f"no private RabbitMQ node here: {why_not}")
    node = Broker(f"mlpfault{unique}")
    try:
        yield node.launch()
    finally:
        node.shutdown()  # the finaliser: the node goes whatever happened above


def _pages_on_disk(run_dir: Path) -> int:
    path = run_dir / "documents.jsonl"
    if not path.exists():
        return 0
    return path.read_bytes().count(b'"type":"run.page"')


def test_broker_restart_mid_run_loses_and_doubles_no_page(broker: Broker, tmp_path: Path, unique: str) -> None:
    lab = f"lab{unique}"
    results, spool = tmp_path / "results", tmp_path / "spool"
    consumer_bus = RabbitMQBus(broker.url, client_name="fault-consumer")
    collector = RunCollector(consumer_bus, lab, durable=True).start()
    try:
        with simulator(tmp_path / "logs") as sim:
            env = director_env(analyzer=sim_resource(sim), results=results, amqp_url=broker.url, lab=lab,
                               MLPOWER_SPOOL_DIR=str(spool))
            director = start_director(env, tmp_path / "logs")
            try:
                status, accepted = http("POST", director_url(director, "/runs"),
                                        {"phase_s": 2.5, "sample_interval_s": 0.1})
                assert status == 202, accepted
                run_id, run_dir = accepted["run_id"], Path(accepted["output_dir"])
                wait_until(lambda: _pages_on_disk(run_dir) >= 3, 15, "the first pages of the run")

                LEDGER.fault("rabbitmq restarted mid-run")
                broker.stop_app()
                down_at = _pages_on_disk(run_dir)
                time.sleep(1.0)  # the broker stays away while the director samples on
                broker.start_app()
                up_at = _pages_on_disk(run_dir)
                assert up_at > down_at, "the director must keep sampling while the broker is away"

                completed = collector.wait_stopped(run_id, timeout_s=30)
                assert completed.status == "success", completed.reason
                written = file_documents(run_dir)
                assert isinstance(written[-1], RunStop)
                got = collector.wait_all(run_id, len(written), timeout_s=30)
                time.sleep(0.5)  # anything extra (a doubled page under a new seq) would show up now
                got = collector.documents[run_id]
            finally:
                director.stop()
            log = director.log()
            check_no_crash(director, sim)
    finally:
        collector.close(delete=True)
        consumer_bus.close()

    # the fault really hit the publishing path: pages went to the spool and came back out of it
    assert "spooling until the broker is back" in log, log[-3000:]
    assert (spool / "director-sut.jsonl").read_bytes() == b"", "the spool must be empty once replayed"
    # exactly once downstream, after dedupe by (run_id, seq): the same documents as on disk
    assert sorted(got) == [d.seq for d in written] == list(range(len(written)))
    assert all(got[d.seq] == d for d in written), "a document arrived different from the one written"
    pages = [d for d in written if isinstance(d, SamplePage)]
    received_pages = [d for d in got.values() if isinstance(d, SamplePage)]
    assert len(received_pages) == len(pages) and written[-1].pages == len(pages)
    assert [(p.stream, p.mode, p.page) for p in sorted(received_pages, key=lambda p: p.seq)] == \
        [(p.stream, p.mode, p.page) for p in pages]
    sent = page_samples(written)
    received = page_samples(received_pages)
    assert sent == received == written[-1].samples > 0
    LEDGER.samples(sent, received)


def test_broker_restart_during_testing_does_not_abort_a_bus_mode_run(broker: Broker, tmp_path: Path,
                                                                     unique: str) -> None:
    """Bus mode: the agent's phase events and heartbeats, and the director's asks, outlive the broker
    restart (durable queues, the spools); the run completes with its LoadGen window and every sample."""
    from mlpower.schema import PhaseMark

    from tests.reliability.buslab import BusLab

    with simulator(tmp_path / "logs") as sim:
        lab = BusLab(broker, sim, tmp_path, f"lab{unique}", f"sut{unique}", workload_s=6.0)
        try:
            lab.start()
            run_id, run_dir = lab.start_run(modes=("ranging", "testing"))
            # a bound on a broken run, not a pace: the ranging LoadGen run lasts 6 s on a quiet machine, and
            # this suite's other workers may slow it several times over
            wait_until(lambda: (tmp_path / "agent" / run_id / "run_1").is_dir(), 180, "the testing workload")
            lab.workload_running(run_id)
            LEDGER.fault("rabbitmq restarted during testing (bus mode)")
            lab.restart_broker(away_s=2.0)
            completed = lab.wait_end(run_id, timeout_s=180)
            assert (completed.status, completed.reason) == ("success", ""), completed
            samples = lab.check_exactly_once(run_id, run_dir)
            marks = [(d.name, d.mode) for d in file_documents(run_dir)
                     if isinstance(d, PhaseMark) and d.source == "loadgen"]
            assert marks == [("power_begin", "ranging"), ("power_end", "ranging"),
                             ("power_begin", "testing"), ("power_end", "testing")]
            LEDGER.samples(samples, samples)
            assert lab.director is not None and lab.agent is not None
            logs = lab.director.log() + lab.agent.log()
            assert "reconnecting" in logs or "spooling" in logs, "the restart really cut the services off"
        finally:
            lab.stop()
        check_no_crash(*lab.procs)
