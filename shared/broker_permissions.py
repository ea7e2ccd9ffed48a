"""Least privilege on the broker: what each service may configure, write and read, as RabbitMQ
permission patterns (``rabbitmqctl set_permissions -p <vhost> <user> <configure> <write> <read>``).

One table, derived from the topology's names: each service configures the shared exchanges
(every client declares them, ``rabbitmq.declare_topology``) and its own queues only; it writes to
the exchanges it publishes to and to its own queues (a binding needs write on the queue); it
reads the exchanges its queues are bound to and its own queues. So the SUT agent cannot publish
run documents, the simulator cannot send commands, and no service can consume another's queue.

RabbitMQ's rules: declaring a queue or exchange needs *configure* on it, binding needs *write* on
the queue and *read* on the exchange, publishing needs *write* on the exchange, consuming needs
*read* on the queue, and a queue with a dead-letter exchange needs *write* on that exchange
(every mlpower queue dead-letters to its lab's ``mlpower.<lab>.dlx``). Patterns are matched against the whole
resource name.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from mlpower import topology

SERVICES = ("director", "sut_agent", "analytics", "figures", "analyzer_sim")

_EXCHANGE = {"runs": topology.RUNS_EXCHANGE, "commands": topology.COMMANDS_EXCHANGE,
             "events": topology.EVENTS_EXCHANGE}
_SERVER_NAMED = r"amq\.gen-[A-Za-z0-9_\-]+"  # an exclusive listener's queue, named by the broker


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str

    def matches(self, kind: str, name: str) -> bool:
        return re.fullmatch(getattr(self, kind), name) is not None


@dataclass(frozen=True)
class _Grant:
    queues: tuple[str, ...]      # patterns of the service's own queues
    publishes: tuple[str, ...]   # exchanges (by short name) it publishes to
    binds: tuple[str, ...]       # exchanges its queues are bound to


def _queue(lab: str, service: str, short: str) -> str:
    """A service's durable queue, as ``topology.service_queue`` names it: ``mlpower.<lab>.<service>.<short>``."""
    return re.escape(f"mlpower.{topology.segment(lab)}.{topology.segment(service)}.{short}")


def _grants(lab: str, sut: str) -> dict[str, _Grant]:
    director, agent = f"director-{sut}", f"agent-{sut}"
    return {
        "director": _Grant((_queue(lab, director, "commands"), _queue(lab, director, "events")),
                           ("runs", "events", "commands"), ("commands", "events")),
        "sut_agent": _Grant((_queue(lab, agent, "commands"),), ("events",), ("commands",)),
        "analytics": _Grant((_queue(lab, "analytics", "runs") + r"\.s[0-9]+", _queue(lab, "analytics", "events")),
                            ("events",), ("runs", "events")),
        "figures": _Grant((_queue(lab, "figures", "events"), _queue(lab, "figures", "commands")), ("events",),
                          ("events", "commands")),
        "analyzer_sim": _Grant((_SERVER_NAMED,), (), ("events",)),
    }


def _anchored(patterns: list[str]) -> str:
    return "^(" + "|".join(patterns) + ")$"


PER_SUT = ("director", "sut_agent")


def permissions(service: str, *, lab: str, sut: str = "") -> Permissions:
    """The permission patterns of ``service`` in lab ``lab`` (the director and the agent: of SUT ``sut``)."""
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")
    if service in PER_SUT and not sut:
        raise ValueError(f"the {service}'s permissions are per SUT: name it")
    grants = _grants(lab, sut or "_")
    grant = grants[service]
    dlx = re.escape(topology.dead_letter_exchange(lab))  # the lab's own dead-letter path
    shared = [*(re.escape(name) for name in _EXCHANGE.values()), dlx]
    dead_letters = re.escape(topology.dead_letter_queue(lab))
    return Permissions(
        configure=_anchored([*shared, dead_letters, *grant.queues]),
        # the dead-letter exchange: declaring a queue that dead-letters there needs write on it
        write=_anchored([dead_letters, dlx,
                         *(re.escape(_EXCHANGE[e]) for e in grant.publishes), *grant.queues]),
        read=_anchored([dlx, *(re.escape(_EXCHANGE[e]) for e in grant.binds),
                        *grant.queues]),
    )


def accounts(lab: str, suts: list[str]) -> dict[str, Permissions]:
    """Every broker account of a lab, by the name its URL goes under in the Kubernetes Secret
    (``amqp-url-<name>``): one director and one agent per SUT, analytics, figures, the simulator."""
    found = {f"director-{sut}": permissions("director", lab=lab, sut=sut) for sut in suts}
    found |= {f"sut-agent-{sut}": permissions("sut_agent", lab=lab, sut=sut) for sut in suts}
    found |= {"analytics": permissions("analytics", lab=lab), "figures": permissions("figures", lab=lab),
              "analyzer-sim": permissions("analyzer_sim", lab=lab)}
    return found


def rabbitmqctl_commands(lab: str, suts: list[str], vhost: str = "/") -> list[str]:
    """``set_permissions`` lines for an operator (after ``rabbitmqctl add_user <name>``, which reads
    the password from its standard input), the user named ``mlpower-<lab>-<account>``."""
    return [f"rabbitmqctl set_permissions -p {shlex.quote(vhost)} {shlex.quote(f'mlpower-{lab}-{name}')} "
            f"{shlex.quote(granted.configure)} {shlex.quote(granted.write)} {shlex.quote(granted.read)}"
            for name, granted in accounts(lab, suts).items()]


if __name__ == "__main__":  # python -m mlpower.broker_permissions <lab> <sut>...
    import sys

    if len(sys.argv) < 2:
        sys.exit("usage: python -m mlpower.broker_permissions <lab> [<sut> ...]")
    print("\n".join(rabbitmqctl_commands(sys.argv[1], sys.argv[2:])))
