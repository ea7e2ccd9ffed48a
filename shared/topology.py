"""The bus topology, declared once: exchanges, routing keys, queues and the dead-letter path.

Run documents go to a topic exchange keyed ``<lab>.<sut>.<analyzer>.<run>``; commands to one
keyed ``<service>.<instance>``; events to one keyed ``<event>.<lab>.<sut>``. Every queue
dead-letters into ``mlpower.dlx`` -> ``mlpower.dead_letter``: messages that fail to decode or
whose handler fails land there with the reason in a header, instead of blocking the queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlpower.schema import Message, family

RUNS_EXCHANGE = "mlpower.runs"
COMMANDS_EXCHANGE = "mlpower.commands"
EVENTS_EXCHANGE = "mlpower.events"
DEAD_LETTER_EXCHANGE = "mlpower.dlx"
DEAD_LETTER_QUEUE = "mlpower.dead_letter"

EXCHANGE_OF_FAMILY = {"runs": RUNS_EXCHANGE, "commands": COMMANDS_EXCHANGE, "events": EVENTS_EXCHANGE}
TOPIC_EXCHANGES = tuple(EXCHANGE_OF_FAMILY.values())

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def segment(name: str) -> str:
    """A routing-key word: dots and wildcards would change the key's meaning, so they go."""
    cleaned = _UNSAFE.sub("_", name)
    return cleaned or "_"


def run_key(lab: str, sut: str, analyzer: str, run_id: str) -> str:
    return ".".join(segment(part) for part in (lab, sut, analyzer, run_id))


def runs_of_lab(lab: str) -> str:
    """The pattern of every run document of one lab (``run_key`` would clean its ``*`` away)."""
    return f"{segment(lab)}.*.*.*"


def command_key(service: str, instance: str = "default") -> str:
    return f"{segment(service)}.{segment(instance)}"


def event_key(message: Message, lab: str = "", sut: str = "") -> str:
    event_name = str(message.type).split(".", 1)[1]
    return ".".join(segment(part) for part in (event_name, lab or getattr(message, "lab", "") or "_",
                                               sut or getattr(message, "sut", "") or "_"))


def exchange_for(message: Message) -> str:
    return EXCHANGE_OF_FAMILY[family(message)]


@dataclass(frozen=True)
class QueueSpec:
    """A durable queue bound to one exchange with some topic patterns.

    ``exclusive`` queues (auto-deleted, server-named when ``name`` is empty) serve live listeners
    such as a dashboard or a test that must not leave state behind.
    """

    name: str
    exchange: str
    patterns: tuple[str, ...] = ("#",)
    durable: bool = True
    exclusive: bool = False
    prefetch: int = 64
    arguments: dict[str, object] = field(default_factory=dict)


def service_queue(service: str, exchange: str, patterns: tuple[str, ...] = ("#",)) -> QueueSpec:
    """The durable queue a service consumes from one exchange, e.g. ``analytics.runs``."""
    short = exchange.rsplit(".", 1)[-1]
    return QueueSpec(name=f"mlpower.{segment(service)}.{short}", exchange=exchange, patterns=patterns)


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words."""
    words, pats = key.split("."), pattern.split(".")

    def match(i: int, j: int) -> bool:
        if j == len(pats):
            return i == len(words)
        if pats[j] == "#":
            return any(match(k, j + 1) for k in range(i, len(words) + 1))
        if i == len(words):
            return False
        return (pats[j] == "*" or pats[j] == words[i]) and match(i + 1, j + 1)

    return match(0, 0)
