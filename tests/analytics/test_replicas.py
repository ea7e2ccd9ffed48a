"""Analytics as several replicas on the real broker: each run analysed by exactly one replica, and
a replica killed mid-run leaves its runs to another, which completes them from the durable shards
with nothing lost or counted twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.rabbitmq import RabbitMQBus
from mlpower.runstream import RunStream
from mlpower.schema import RunAnalyzed, SourceInfo
from mlpower.testing import Inbox, ServiceProcess, wait_for

T0_UTC_S = 1_795_891_000.0
PAGE_SAMPLES = 10


def start_replica(amqp_url: str, lab: str, index: int, replicas: int, folder: Path) -> ServiceProcess:
    env = {"AMQP_URL": amqp_url, "MLPOWER_LAB": lab, "MLPOWER_ANALYTICS_REPLICAS": str(replicas),
           "MLPOWER_ANALYTICS_REPLICA": str(index), "MLPOWER_ANALYTICS_STANDBY_S": "0.5",
           "MLPOWER_ANALYTICS_PORT": "0", "MLPOWER_RESULTS_DIR": str(folder),
           "MLPOWER_ANALYTICS_STORE": str(folder / f"runs-{index}.parquet")}
    return ServiceProcess("mlpower.analytics", env, folder / f"analytics-{index}.log", "analytics HTTP on")


def run_ids_for(lab: str, owner_of: int, replicas: int, count: int, tag: str) -> list[str]:
    """Run ids whose shards belong to replica ``owner_of``."""
    found, n = [], 0
    while len(found) < count:
        run_id = f"{tag}-{lab}-{n}"
        if topology.run_shard(run_id) % replicas == owner_of:
            found.append(run_id)
        n += 1
    return found


class Run:
    def __init__(self, bus: RabbitMQBus, lab: str, run_id: str) -> None:
        self.stream = RunStream(bus, dict(run_id=run_id, lab=lab, sut=f"sut-{run_id}", analyzer="a", t_utc_s=T0_UTC_S,
                                          settings={"workload": "builtin:offline"}))
        self.stream.descriptor(stream="a", sample_interval_s=1.0, source=SourceInfo(kind="wt310e"))
        self.stream.mark("power_begin", mode="testing", t_utc_s=T0_UTC_S + 0.5, source="loadgen")
        self.sent = 0

    def pages(self, count: int) -> None:
        for _ in range(count):
            t = [T0_UTC_S + 1.0 + self.sent + i for i in range(PAGE_SAMPLES)]
            n = len(t)
            self.stream.page("a", mode="testing", t_utc_s=t, power_w=[250.0] * n, voltage_v=[230.0] * n,
                             current_a=[1.1] * n, power_factor=[0.99] * n, voltage_range_v=[300.0] * n,
                             current_range_a=[2.0] * n, uncertainty_w=[0.8] * n, flags=[0] * n)
            self.sent += n

    def finish(self) -> None:
        end = T0_UTC_S + 1.0 + self.sent
        self.stream.mark("power_end", mode="testing", t_utc_s=end - 0.5, source="loadgen")
        self.stream.stop("success", t_utc_s=end)


@pytest.fixture
def shard_cleanup(rabbit_bus: RabbitMQBus, unique: str) -> Iterator[str]:
    lab = f"rep{unique}"
    yield lab
    for spec in topology.run_shard_queues("analytics", lab):
        rabbit_bus.delete_queue(spec.name)


@pytest.mark.slow
def test_a_replica_killed_mid_run_leaves_its_runs_to_another_with_nothing_lost_or_counted_twice(
        rabbit_bus: RabbitMQBus, amqp_url: str, shard_cleanup: str, tmp_path: Path) -> None:
    lab = shard_cleanup
    replicas = [start_replica(amqp_url, lab, i, 2, tmp_path) for i in range(2)]
    try:
        with Inbox(rabbit_bus, topology.EVENTS_EXCHANGE, (f"run_analyzed.{lab}.*",)) as analyzed:
            doomed = [Run(rabbit_bus, lab, r) for r in run_ids_for(lab, 0, 2, 2, "doomed")]
            kept = [Run(rabbit_bus, lab, r) for r in run_ids_for(lab, 1, 2, 2, "kept")]
            for run in doomed + kept:
                run.pages(3)
            shards = topology.run_shard_queues("analytics", lab)
            doomed_queues = {shards[topology.run_shard(r.stream.run_id)].name for r in doomed}
            # every document so far delivered to replica 0 and held unacknowledged, the run not done
            wait_for(lambda: all(rabbit_bus.queue_depth(q) == (0, 2) for q in doomed_queues), 30,
                     what="replica 0 to hold the doomed runs' documents (and replica 1 to stand by)")
            replicas[0].kill()
            for run in doomed + kept:
                run.pages(2)
                run.finish()
            results = [analyzed.next(RunAnalyzed, timeout_s=60) for _ in range(4)]
            by_run = {m.run_id: m for m in results}
            assert sorted(by_run) == sorted(r.stream.run_id for r in doomed + kept)
            for run in doomed + kept:
                summary = by_run[run.stream.run_id].summary
                assert summary.samples_in_window == run.sent == 50, summary  # nothing lost, nothing twice
            # nothing left on the shards: every document acknowledged once its run was analysed
            wait_for(lambda: all((rabbit_bus.queue_depth(s.name) or (0, 0))[0] == 0 for s in shards), 30,
                     what="the shards to drain")
            replicas[1].stop()
            assert len([m for m in analyzed.messages if isinstance(m, RunAnalyzed)]) == 4, "a run was analysed twice"
    finally:
        for replica in replicas:
            replica.kill()
