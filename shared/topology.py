"""The bus topology, declared once: exchanges, routing keys, queues and the dead-letter path.

Run documents go to a topic exchange keyed ``<lab>.<sut>.<analyzer>.<run>``; commands to one
keyed ``<lab>.<service>.<instance>``; events to one keyed ``<event>.<lab>.<sut>``.

Labs stay apart on one broker (one vhost): every key carries the lab (``MLPOWER_LAB``), every
service queue is named ``mlpower.<lab>.<service>.<exchange>`` and binds only its lab's keys, and
every lab has its own dead-letter path ``mlpower.<lab>.dlx`` -> ``mlpower.<lab>.dead_letter``:
messages that fail to decode or whose handler fails land there with the reason in a header,
instead of blocking the queue. That queue is bounded (length and age, ``DeadLetterPolicy``), so
nobody reading it never fills the broker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlpower.schema import Message, family

RUNS_EXCHANGE = "mlpower.runs"
COMMANDS_EXCHANGE = "mlpower.commands"
EVENTS_EXCHANGE = "mlpower.events"

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


def command_key(service: str, instance: str = "default", *, lab: str) -> str:
    """``<lab>.<service>.<instance>``: a command reaches only its own lab's consumer."""
    return ".".join(segment(part) for part in (lab, service, instance))


def event_pattern(event_name: str, lab: str, sut: str = "*") -> str:
    """The binding for one event of one lab (all its SUTs by default): ``<event>.<lab>.<sut>``."""
    return ".".join((segment(event_name), segment(lab), sut if sut == "*" else segment(sut)))


def lab_runs_pattern(lab: str) -> str:
    """The binding for every run document of one lab."""
    return f"{segment(lab)}.#"


def dead_letter_exchange(lab: str) -> str:
    return f"mlpower.{segment(lab)}.dlx"


def dead_letter_queue(lab: str) -> str:
    return f"mlpower.{segment(lab)}.dead_letter"


@dataclass(frozen=True)
class DeadLetterPolicy:
    """Bounds of a lab's dead-letter queue: the oldest message goes when either is exceeded."""

    max_messages: int = 10_000
    ttl_s: float = 7 * 24 * 3600.0

    def arguments(self) -> dict[str, object]:
        return {"x-max-length": int(self.max_messages), "x-overflow": "drop-head",
                "x-message-ttl": int(round(self.ttl_s * 1000))}


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


def service_queue(service: str, exchange: str, patterns: tuple[str, ...], *, lab: str,
                  arguments: dict[str, object] | None = None) -> QueueSpec:
    """The durable queue a lab's service consumes from one exchange, e.g. ``mlpower.lab1.analytics.runs``.

    ``patterns`` must be the lab's own keys (``lab_runs_pattern``, ``event_pattern``,
    ``command_key``): a queue that binds ``#`` would collect every lab's messages.
    """
    for pattern in patterns:
        if not is_lab_scoped(pattern, exchange, lab):
            raise ValueError(f"{service}'s binding {pattern!r} on {exchange} is not scoped to lab {lab!r}")
    short = exchange.rsplit(".", 1)[-1]
    return QueueSpec(name=f"mlpower.{segment(lab)}.{segment(service)}.{short}", exchange=exchange, patterns=patterns,
                     arguments=dict(arguments or {}))


# Which word of a key names the lab, by exchange: events are ``<event>.<lab>.<sut>``.
LAB_WORD = {RUNS_EXCHANGE: 0, COMMANDS_EXCHANGE: 0, EVENTS_EXCHANGE: 1}


def is_lab_scoped(pattern: str, exchange: str, lab: str) -> bool:
    """Whether a binding can only match keys of ``lab`` (its lab word is that lab, literally)."""
    words = pattern.split(".")
    index = LAB_WORD[exchange]
    return "#" not in words[:index + 1] and len(words) > index and words[index] == segment(lab)


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
