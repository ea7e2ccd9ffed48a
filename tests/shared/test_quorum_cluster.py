"""The broker survives a node: a 3-node RabbitMQ cluster started here as local processes (own node
names, AMQP and distribution ports, data folders and Erlang cookie; never the system broker on
5672), run documents and control queues as quorum queues, one node killed mid-run, and the run
completes with every sample counted exactly once."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlpower import topology
from mlpower.analytics.service import AnalyticsService
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.rabbitmq import RabbitMQBus
from mlpower.runstream import RunStream
from mlpower.schema import RunAnalyzed, SourceInfo
from mlpower.settings import load_settings
from mlpower.testing import Inbox, wait_for

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the script itself: runs as this user
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
T0_UTC_S = 1_795_891_000.0
SYSTEM_BROKER_PORT = 5672

pytestmark = pytest.mark.skipif(not RABBITMQ_SERVER.exists(), reason="rabbitmq-server is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    assert port != SYSTEM_BROKER_PORT
    return port


@dataclass
class Node:
    name: str
    amqp_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.folder.parent / "home"),
                "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
                "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(free_port()), "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.folder / "log"), "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.folder / "pid"), "ERL_EPMD_ADDRESS": "127.0.0.1"}

    def start(self, peers: list[str]) -> None:
        self.folder.mkdir(parents=True)
        (self.folder / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's: that one names the system node
        (self.folder / "enabled_plugins").write_text("[].\n")
        lines = [f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}", "loopback_users = none",
                 "cluster_formation.peer_discovery_backend = classic_config"]
        lines += [f"cluster_formation.classic_config.nodes.{i} = {peer}" for i, peer in enumerate(peers, start=1)]
        (self.folder / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        log = open(self.folder / "server.log", "wb")  # noqa: SIM115 - the node holds it
        self.process = subprocess.Popen([str(RABBITMQ_SERVER)], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def kill(self) -> None:
        """SIGKILL to the node's whole process group (the Erlang VM and its helpers)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)

    def running_nodes(self) -> int:
        result = subprocess.run([str(RABBITMQCTL), "-n", self.name, "eval", "length(rabbit_nodes:all_running())."],
                                env=self.env(), capture_output=True, text=True, timeout=60)
        return int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip().isdigit() else 0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    tag = uuid.uuid4().hex[:6]
    home = tmp_path / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"
    cookie.write_text(f"MLPOWERTEST{uuid.uuid4().hex.upper()}")  # this cluster's own, never the system's
    cookie.chmod(0o400)
    nodes = [Node(f"mlq{tag}{i}@localhost", free_port(), tmp_path / f"node{i}") for i in range(3)]
    try:
        # the first node boots alone before its peers start: started together, classic peer discovery
        # can let each boot as its own cluster, and they never merge
        nodes[0].start([n.name for n in nodes])
        wait_for(lambda: nodes[0].running_nodes() == 1, 240, what="the first node to run", poll_s=1.0)
        for node in nodes[1:]:
            node.start([n.name for n in nodes])
        wait_for(lambda: nodes[0].running_nodes() == 3, 240, what="the 3 nodes to form one cluster", poll_s=1.0)
        yield nodes
    finally:
        for node in nodes:
            node.kill()
        shutil.rmtree(tmp_path / "home", ignore_errors=True)


@pytest.mark.slow
def test_a_run_on_quorum_queues_completes_when_a_node_dies_with_every_sample_once(cluster: list[Node]) -> None:
    a, b, c = cluster
    lab = f"quorum{uuid.uuid4().hex[:6]}"
    # the run shards are declared through node c, so their leaders are there: the node that dies
    declarer = RabbitMQBus(c.url, client_name="declarer", queue_type="quorum", lab=lab)
    for spec in topology.run_shard_queues("analytics", lab):
        declarer.declare(spec)
    declarer.close()
    consumer_bus = RabbitMQBus(b.url, client_name="analytics", queue_type="quorum", lab=lab)
    publisher_bus = RabbitMQBus(a.url, client_name="director", queue_type="quorum", lab=lab)
    settings = load_settings(AnalyticsSettings, lab=lab, amqp_url=b.url, queue_type="quorum",
                             store_path=c.folder.parent / "runs.parquet")
    service = AnalyticsService(settings, consumer_bus)
    handled: list[int] = []
    original = service.handle_document

    def counting(document, settle=lambda: None):  # type: ignore[no-untyped-def]
        handled.append(document.seq)
        original(document, settle)

    service.handle_document = counting  # type: ignore[method-assign]
    try:
        with Inbox(consumer_bus, topology.EVENTS_EXCHANGE, (f"run_analyzed.{lab}.*",)) as analyzed:
            service.start()
            stream = RunStream(publisher_bus, dict(run_id=f"run-{lab}", lab=lab, sut="sut", analyzer="a",
                                                   t_utc_s=T0_UTC_S, settings={"workload": "builtin:offline"}))
            stream.descriptor(stream="a", sample_interval_s=1.0, source=SourceInfo(kind="wt310e"))
            stream.mark("power_begin", mode="testing", t_utc_s=T0_UTC_S + 0.5, source="loadgen")
            sent = 0

            def pages(count: int) -> None:
                nonlocal sent
                for _ in range(count):
                    t = [T0_UTC_S + 1.0 + sent + i for i in range(10)]
                    stream.page("a", mode="testing", t_utc_s=t, power_w=[250.0] * 10, voltage_v=[230.0] * 10,
                                current_a=[1.1] * 10, power_factor=[0.99] * 10, voltage_range_v=[300.0] * 10,
                                current_range_a=[2.0] * 10, uncertainty_w=[0.8] * 10, flags=[0] * 10)
                    sent += 10

            pages(5)
            wait_for(lambda: len(set(handled)) >= 8, 60, what="the first pages to reach analytics")
            c.kill()  # mid-run: the leader of every shard goes
            pages(5)
            stream.mark("power_end", mode="testing", t_utc_s=T0_UTC_S + 1.0 + sent - 0.5, source="loadgen")
            stream.stop("success", t_utc_s=T0_UTC_S + 1.0 + sent)
            result = analyzed.next(RunAnalyzed, timeout_s=120)
            assert result.summary.samples_in_window == sent == 100  # every sample, once
            assert sorted(set(handled)) == list(range(15))  # start, descriptor, 2 marks, 10 pages, stop: none lost
            assert [m.run_id for m in analyzed.messages if isinstance(m, RunAnalyzed)] == [result.run_id]
    finally:
        service.stop()
        publisher_bus.close()
        consumer_bus.close()
