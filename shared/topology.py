"""The bus topology, declared once: exchanges, routing keys, queues and the dead-letter path.

Run documents go to a topic exchange keyed ``<lab>.<sut>.<analyzer>.<run>.<shard>``; commands to
one keyed ``<lab>.<service>.<instance>``; events to one keyed ``<event>.<lab>.<sut>``.

Labs stay apart on one broker (one vhost): every key carries the lab (``MLPOWER_LAB``), every
service queue is named ``mlpower.<lab>.<service>.<exchange>...`` and binds only its lab's keys,
and every lab has its own dead-letter path ``mlpower.<lab>.dlx`` -> ``mlpower.<lab>.dead_letter``:
messages that fail to decode or whose handler fails land there with the reason in a header,
instead of blocking the queue. That queue is bounded (length and age, ``DeadLetterPolicy``), so
nobody reading it never fills the broker.

Run-affine shards: the last word of a run key is the run's shard (``s00`` .. ``s07``, a hash of
the run id), so that a service running as several replicas can share a lab's runs while every
run is handled by one replica with its documents in order. Each shard has one durable queue
with a single active consumer: every replica consumes every shard, the broker delivers a shard
to one of them, and when that one goes its unacknowledged documents go to the next in order.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Literal

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


RUN_SHARDS = 8  # shards per lab: as many analytics replicas as this can share a lab's runs


def run_shard(run_id: str) -> int:
    """The shard of a run: a stable hash of its id (the same in every process and language)."""
    return zlib.crc32(segment(run_id).encode("utf-8")) % RUN_SHARDS


def shard_word(shard: int) -> str:
    return f"s{shard:02d}"


def run_key(lab: str, sut: str, analyzer: str, run_id: str) -> str:
    words = [segment(part) for part in (lab, sut, analyzer, run_id)]
    return ".".join((*words, shard_word(run_shard(run_id))))


def runs_of_lab(lab: str) -> str:
    """The pattern of every run document of one lab (``run_key`` would clean its ``*`` away)."""
    return f"{segment(lab)}.*.*.*.*"


def runs_of_shard(lab: str, shard: int) -> str:
    """The pattern of one shard's run documents in one lab."""
    return f"{segment(lab)}.*.*.*.{shard_word(shard)}"


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
    prefetch: int = 64  # 0: no limit (a consumer that acknowledges late must not be starved)
    arguments: dict[str, object] = field(default_factory=dict)
    # "message": acknowledged once its handler returned; "handler": the handler settles it later
    # through ``Delivery.settle`` (on the consumer's thread), e.g. when the whole run is analysed
    ack: Literal["message", "handler"] = "message"
    single_active_consumer: bool = False


def service_queue(service: str, exchange: str, patterns: tuple[str, ...], *, lab: str,
                  arguments: dict[str, object] | None = None) -> QueueSpec:
    """The durable queue a lab's service consumes from one exchange, e.g. ``mlpower.lab1.analytics.events``.

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


def run_shard_queues(service: str, lab: str) -> tuple[QueueSpec, ...]:
    """A service's shard queues of one lab's run documents: durable, one active consumer each,
    documents acknowledged when the handler settles them (a run's, once the run is done)."""
    return tuple(
        QueueSpec(name=f"mlpower.{segment(lab)}.{segment(service)}.runs.{shard_word(shard)}", exchange=RUNS_EXCHANGE,
                  patterns=(runs_of_shard(lab, shard),), prefetch=0, ack="handler", single_active_consumer=True)
        for shard in range(RUN_SHARDS)
    )


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
