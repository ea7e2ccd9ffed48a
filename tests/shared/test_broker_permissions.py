"""Each service's own RabbitMQ user, limited by mlpower.broker_permissions, on the real broker:
it can do everything its service does (declare the topology and its queues, consume them, publish
where it publishes) and nothing of another service's (consume its queue, publish run documents or
commands it never sends)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika
import pytest
from mlpower import topology
from mlpower.analytics.service import lab_events_queue
from mlpower.analyzer_sim.follow import follow_queue
from mlpower.broker_permissions import SERVICES, permissions
from mlpower.director.bus_edge import command_queue as director_commands
from mlpower.director.bus_edge import events_queue as director_events
from mlpower.rabbitmq import LabTopology, RabbitMQBus, declare_queue, declare_topology
from mlpower.sut_agent.bus_mode import command_queue as agent_commands
from mlpower.testing import wait_for
from pika.exceptions import ChannelClosedByBroker

# rabbitmqctl makes and deletes a user per test (a few seconds each): with the slow tests
pytestmark = pytest.mark.slow


def own_queues(service: str, lab: str, sut: str) -> list[topology.QueueSpec]:
    """What each service really consumes: its own modules' queue specs."""
    return {
        "director": [director_commands(lab, sut), director_events(lab, sut)],
        "sut_agent": [agent_commands(lab, sut)],
        "analytics": [*topology.run_shard_queues("analytics", lab), lab_events_queue(lab)],
        "figures": [topology.service_queue("figures", topology.EVENTS_EXCHANGE,
                                           (topology.event_pattern("run_analyzed", lab),), lab=lab),
                    topology.service_queue("figures", topology.COMMANDS_EXCHANGE,
                                           (topology.command_key("figures", "default", lab=lab),), lab=lab)],
        "analyzer_sim": [follow_queue(lab, sut)],
    }[service]


PUBLISHES = {"director": (topology.RUNS_EXCHANGE, topology.EVENTS_EXCHANGE, topology.COMMANDS_EXCHANGE),
             "sut_agent": (topology.EVENTS_EXCHANGE,), "analytics": (topology.EVENTS_EXCHANGE,),
             "figures": (topology.EVENTS_EXCHANGE,), "analyzer_sim": ()}


def _vhost(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "/"


def _ctl(*args: str, stdin: str = "") -> None:
    result = subprocess.run(["rabbitmqctl", "-q", *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def service_user(amqp_url: str, unique: str) -> Iterator[Callable[[str, str, str], str]]:
    """Makes a user with ``service``'s permissions in the test's vhost; returns its broker URL."""
    made: list[str] = []

    def make(service: str, lab: str, sut: str) -> str:
        user, password = f"pytest-{unique}-{service}", secrets.token_urlsafe(16)
        _ctl("add_user", user, stdin=password)
        made.append(user)
        granted = permissions(service, lab=lab, sut=sut)
        _ctl("set_permissions", "-p", _vhost(amqp_url), user, granted.configure, granted.write, granted.read)
        parts = urlsplit(amqp_url)
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5672}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    yield make
    for user in made:
        _ctl("delete_user", user)


def _channel(url: str) -> tuple[pika.BlockingConnection, object]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    return connection, channel


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_can_do_its_own_work(service_user: Callable[[str, str, str], str], amqp_url: str,
                                          unique: str, service: str) -> None:
    lab, sut = f"lab{unique}", f"sut{unique}"
    url = service_user(service, lab, sut)
    connection, channel = _channel(url)
    declared = []
    try:
        declare_topology(channel, LabTopology(lab))
        for spec in own_queues(service, lab, sut):
            name = declare_queue(channel, spec, LabTopology(lab))
            declared.append(name)
            tag = channel.basic_consume(queue=name, on_message_callback=lambda *_: None, auto_ack=False)
            channel.basic_cancel(tag)
        for exchange in PUBLISHES[service]:
            channel.basic_publish(exchange, f"permission-test-{unique}", b"{}")  # routed nowhere
    finally:
        connection.close()
    # and the service's own bus, as that user, consumes its queue
    bus = RabbitMQBus(url, client_name=f"pytest-{service}", lab=lab)
    subscription = bus.subscribe(own_queues(service, lab, sut)[0], lambda message, delivery: None)
    try:
        wait_for(lambda: subscription.connected, what=f"the {service}'s subscription")
    finally:
        subscription.close()
        bus.close()
    admin, admin_channel = _channel(amqp_url)
    try:
        for name in declared:
            if unique in name:  # this test's own queues; the fixed-name ones are the services' anyway
                admin_channel.queue_delete(name)  # type: ignore[attr-defined]
    finally:
        admin.close()


FORBIDDEN = [
    ("sut_agent", "publish", topology.RUNS_EXCHANGE),          # run documents come from directors only
    ("sut_agent", "consume", "analytics"),                      # another service's queue
    ("analyzer_sim", "publish", topology.COMMANDS_EXCHANGE),    # the simulator commands nobody
    ("analytics", "publish", topology.COMMANDS_EXCHANGE),
    ("figures", "publish", topology.RUNS_EXCHANGE),
    ("director", "consume", "other-director"),                  # another SUT's director
]


@pytest.mark.parametrize("service, action, target", FORBIDDEN, ids=[f"{s}-{a}-{t}" for s, a, t in FORBIDDEN])
def test_nothing_of_another_service(service_user: Callable[[str, str, str], str], amqp_url: str, unique: str,
                                    service: str, action: str, target: str) -> None:
    lab, sut = f"lab{unique}", f"sut{unique}"
    other = topology.run_shard_queues("analytics", lab)[0] if target == "analytics" \
        else director_commands(lab, f"other{unique}")
    admin, admin_channel = _channel(amqp_url)
    if action == "consume":
        declare_topology(admin_channel, LabTopology(lab))
        declare_queue(admin_channel, other, LabTopology(lab))  # it exists: only the permission stands in the way
    connection, channel = _channel(service_user(service, lab, sut))
    try:
        with pytest.raises(ChannelClosedByBroker) as refused:
            if action == "publish":
                channel.basic_publish(target, f"permission-test-{unique}", b"{}")
            else:
                channel.basic_consume(queue=other.name, on_message_callback=lambda *_: None)
        assert refused.value.reply_code == 403, refused.value
    finally:
        if connection.is_open:
            connection.close()
        if action == "consume":
            admin_channel.queue_delete(other.name)  # type: ignore[attr-defined]
        admin.close()


def test_per_sut_services_need_their_sut_and_unknown_services_have_none() -> None:
    with pytest.raises(ValueError, match="per SUT"):
        permissions("director", lab="l")
    with pytest.raises(KeyError):
        permissions("grafana", lab="l")
    agent = permissions("sut_agent", lab="l", sut="gpu.a")  # a dot is no wildcard: the name is escaped
    assert agent.matches("read", "mlpower.l.agent-gpu_a.commands")
    assert not agent.matches("read", "mlpower.l.agent-gpuXa.commands")
    assert not agent.matches("read", "mlpower.other.agent-gpu_a.commands")  # another lab's
