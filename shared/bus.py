"""The bus: one small interface, two adapters (RabbitMQ in ``mlpower.rabbitmq``, in-memory here).

Contract, identical for both adapters (tests/shared/test_bus_contract.py runs it on each):

* ``publish`` encodes a message and sends it to the exchange of its family with a routing key;
  run documents are persistent and, on RabbitMQ, confirmed by the broker before it returns.
* ``subscribe`` consumes a queue (declared from a ``QueueSpec``) on a background thread, in
  order, and acks a message only after the handler returned.
* A body that does not decode, or a handler that raises, is dead-lettered with the reason and
  the consumer carries on. A bus belongs to one lab: it dead-letters into that lab's bounded
  dead-letter queue (``topology.dead_letter_queue``) and reads only that one. The in-memory
  adapter keeps the length bound; message age (the TTL) is the broker's.
* ``Subscription.abort()`` behaves like a crashed consumer: an unacked message is redelivered
  to the next consumer of the queue with ``redelivered=True``.
* A queue whose spec says ``ack="handler"`` leaves each handled message unacknowledged until the
  handler calls ``delivery.settle()`` (on the consumer's thread); what is unsettled when the
  consumer goes is redelivered, in order, to the next consumer (the next active one, for a
  single-active-consumer queue).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlpower import topology
from mlpower.logtext import client_text
from mlpower.schema import DecodeError, Message, decode, encode

if TYPE_CHECKING:
    from mlpower.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What a handler learns about a message besides its content."""

    routing_key: str
    exchange: str
    redelivered: bool = False
    headers: dict[str, object] = field(default_factory=dict)
    # acknowledges the message, for queues that leave that to the handler (``ack="handler"``)
    settle: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)


Handler = Callable[[Message, Delivery], None]


@dataclass(frozen=True)
class DeadLetter:
    body: bytes  # the whole body, or its first ``preview_bytes`` when the reader asked for a preview
    reason: str
    exchange: str
    routing_key: str
    size_bytes: int  # the whole body's size

    @classmethod
    def of(cls, body: bytes, reason: str, exchange: str, routing_key: str,
           preview_bytes: int | None = None) -> DeadLetter:
        kept = body if preview_bytes is None else body[:preview_bytes]
        return cls(kept, reason, exchange, routing_key, len(body))


class Subscription(Protocol):
    queue_name: str

    @property
    def connected(self) -> bool:
        """Whether the consumer is attached to its queue now (False while it reconnects to a lost broker)."""

    def close(self) -> None:
        """Stop consuming after the message in hand is handled and acked."""

    def abort(self) -> None:
        """Stop as if the consumer crashed: the message in hand is not acked and is redelivered."""


class Bus(Protocol):
    def publish(self, message: Message, routing_key: str) -> None: ...

    def publish_raw(self, exchange: str, routing_key: str, body: bytes) -> None:
        """Send bytes as they are; for tests and tools that must send what does not decode."""

    def subscribe(self, spec: topology.QueueSpec, handler: Handler) -> Subscription: ...

    def declare(self, spec: topology.QueueSpec) -> None:
        """Create the queue and its bindings now, so messages published before a consumer starts are kept."""

    def dead_letters(self, limit: int = 100, *, keep: bool = False,
                     preview_bytes: int | None = None) -> list[DeadLetter]:
        """Take up to ``limit`` messages off this lab's dead-letter queue, oldest first (for
        ``mlpower deadletters`` and tests); ``keep`` leaves them there, only showing them;
        ``preview_bytes`` keeps only the start of each body (a reader that shows, not replays)."""

    def dead_letter_depth(self) -> int:
        """How many messages wait in this lab's dead-letter queue."""

    def purge(self, queue_name: str) -> None: ...

    def close(self) -> None: ...


def handle_body(body: bytes, delivery: Delivery, handler: Handler) -> str | None:
    """Decode and handle one body; returns the reason to dead-letter it, or None when handled."""
    try:
        message = decode(body)
    except DecodeError as exc:
        log.warning("dead-lettering undecodable message on %s: %s", client_text(delivery.routing_key), exc)
        return f"decode: {exc}"
    try:
        handler(message, delivery)
    except Exception as exc:  # the handler's failure must not kill the consumer
        log.exception("handler failed for %s on %s", getattr(message, "type", "?"), client_text(delivery.routing_key))
        return f"handler: {type(exc).__name__}: {exc}"
    return None


# --------------------------------------------------------------------------- in-memory adapter


class _Crashed(Exception):
    """Raised inside an in-memory consumer thread to abandon the message in hand."""


@dataclass
class _Envelope:
    body: bytes
    exchange: str
    routing_key: str
    redelivered: bool = False


class _MemoryQueue:
    def __init__(self, spec: topology.QueueSpec) -> None:
        self.spec = spec
        self.items: queue.Queue[_Envelope] = queue.Queue()
        self.consumer: _MemorySubscription | None = None
        self.standby: list[_MemorySubscription] = []  # single active consumer: the next in line
        self.lock = threading.Lock()


class _MemorySubscription:
    def __init__(self, bus: InMemoryBus, q: _MemoryQueue, handler: Handler) -> None:
        self.queue_name = q.spec.name
        self._bus, self._queue, self._handler = bus, q, handler
        self._stop = threading.Event()
        self._crash = threading.Event()
        self._unsettled: dict[int, _Envelope] = {}  # ack="handler": handled, not yet settled, in order
        self._tag = 0
        with q.lock:
            if q.spec.single_active_consumer and q.consumer is not None:
                q.standby.append(self)
            else:
                q.consumer = self
        self._thread = threading.Thread(target=self._run, name=f"memory-consumer-{q.spec.name}", daemon=True)
        self._thread.start()

    def _active(self) -> bool:
        return not self._queue.spec.single_active_consumer or self._queue.consumer is self

    @property
    def connected(self) -> bool:
        return not self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._active():
                self._stop.wait(0.05)
                continue
            try:
                envelope = self._queue.items.get(timeout=0.05)
            except queue.Empty:
                continue
            self._tag += 1
            tag = self._tag
            deferred = self._queue.spec.ack == "handler"
            if deferred:
                self._unsettled[tag] = envelope
            def settle(tag: int = tag) -> None:
                self._unsettled.pop(tag, None)

            delivery = Delivery(envelope.routing_key, envelope.exchange, envelope.redelivered, settle=settle)
            reason = handle_body(envelope.body, delivery, self._guarded_handler)
            if self._crash.is_set():
                self._unsettled.pop(tag, None)
                self._requeue_front([*self._unsettled.values(), envelope])
                self._unsettled.clear()
                return
            if reason is not None:
                self._unsettled.pop(tag, None)
                self._bus._dead_letter(envelope, reason)

    def _guarded_handler(self, message: Message, delivery: Delivery) -> None:
        self._handler(message, delivery)
        if self._crash.is_set():
            raise _Crashed()

    def _requeue_front(self, envelopes: list[_Envelope]) -> None:
        q = self._queue.items
        with q.mutex:
            for envelope in reversed(envelopes):
                q.queue.appendleft(_Envelope(envelope.body, envelope.exchange, envelope.routing_key, True))
            q.not_empty.notify()

    def _leave(self) -> None:
        with self._queue.lock:
            if self in self._queue.standby:
                self._queue.standby.remove(self)
            if self._queue.consumer is self:
                self._queue.consumer = self._queue.standby.pop(0) if self._queue.standby else None

    def close(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        if self._unsettled:  # a consumer that goes leaves what it did not settle to the next one
            self._requeue_front(list(self._unsettled.values()))
            self._unsettled.clear()
        self._leave()

    def abort(self) -> None:
        self._crash.set()
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
            if self._unsettled:  # stopped between messages: the crash leaves these to the next consumer
                self._requeue_front(list(self._unsettled.values()))
                self._unsettled.clear()
        self._leave()


class InMemoryBus:
    """The embedded default for single-process runs and unit tests: same contract, no broker."""

    def __init__(self, *, lab: str = "lab", dead_letter: topology.DeadLetterPolicy | None = None) -> None:
        self.lab = lab
        self._queues: dict[str, _MemoryQueue] = {}
        self._dead: deque[DeadLetter] = deque(maxlen=(dead_letter or topology.DeadLetterPolicy()).max_messages)
        self._lock = threading.Lock()
        self._anonymous = 0

    def _declare(self, spec: topology.QueueSpec) -> _MemoryQueue:
        with self._lock:
            name = spec.name
            if not name:
                self._anonymous += 1
                name = f"amq.gen-{self._anonymous}"
                spec = dataclasses.replace(spec, name=name, exclusive=True)
            existing = self._queues.get(name)
            if existing is None:
                existing = self._queues[name] = _MemoryQueue(spec)
            elif set(spec.patterns) - set(existing.spec.patterns):
                merged = tuple(dict.fromkeys(existing.spec.patterns + spec.patterns))
                existing.spec = dataclasses.replace(spec, name=name, patterns=merged)
            return existing

    def publish(self, message: Message, routing_key: str) -> None:
        self.publish_raw(topology.exchange_for(message), routing_key, encode(message))

    def publish_raw(self, exchange: str, routing_key: str, body: bytes) -> None:
        with self._lock:
            targets = [
                q for q in self._queues.values()
                if q.spec.exchange == exchange and any(topology.topic_matches(p, routing_key) for p in q.spec.patterns)
            ]
        for q in targets:
            q.items.put(_Envelope(body, exchange, routing_key))

    def subscribe(self, spec: topology.QueueSpec, handler: Handler) -> Subscription:
        q = self._declare(spec)
        return _MemorySubscription(self, q, handler)

    def declare(self, spec: topology.QueueSpec) -> None:
        """Create the queue now, so messages published before a consumer starts are kept."""
        self._declare(spec)

    def _dead_letter(self, envelope: _Envelope, reason: str) -> None:
        self._dead.append(DeadLetter.of(envelope.body, reason, envelope.exchange, envelope.routing_key))

    def dead_letters(self, limit: int = 100, *, keep: bool = False,
                     preview_bytes: int | None = None) -> list[DeadLetter]:
        if keep:
            taken = list(self._dead)[:limit]
        else:
            taken = []
            while len(taken) < limit:
                try:
                    taken.append(self._dead.popleft())  # deque operations are atomic: no lock needed
                except IndexError:
                    break
        if preview_bytes is None:
            return taken
        return [replace(d, body=d.body[:preview_bytes]) for d in taken]  # size_bytes stays the whole size

    def dead_letter_depth(self) -> int:
        return len(self._dead)

    def purge(self, queue_name: str) -> None:
        q = self._queues.get(queue_name)
        if q is not None:
            with q.items.mutex:
                q.items.queue.clear()

    def close(self) -> None:
        for q in list(self._queues.values()):
            for subscription in [*q.standby, *([q.consumer] if q.consumer is not None else [])]:
                subscription.close()


def connect(url: str, *, lab: str, kind: str = "rabbitmq", client_name: str = "mlpower",
            spool_path: Path | None = None, queue_type: str = "classic",
            dead_letter: topology.DeadLetterPolicy | None = None) -> Bus:
    """The bus a service's settings ask for: ``rabbitmq`` (``url`` is an AMQP URL) or ``memory``.

    ``lab``: whose dead-letter queue this bus declares, feeds and reads (``MLPOWER_LAB``).
    ``spool_path``: where RabbitMQ publishes wait while the broker is away (memory when None).
    ``queue_type``: ``classic`` or ``quorum`` (replicated over a cluster's nodes) for the durable
    queues this bus declares (``MLPOWER_QUEUE_TYPE``).
    """
    if kind == "memory":
        return InMemoryBus(lab=lab, dead_letter=dead_letter)
    from mlpower.rabbitmq import RabbitMQBus  # the only module that imports pika

    return RabbitMQBus(url, client_name=client_name, spool_path=spool_path, queue_type=queue_type, lab=lab,
                       dead_letter=dead_letter)


def connect_service(settings: ServiceSettings, *, client_name: str, spool_path: Path | None = None) -> Bus:
    """The bus of a service: its settings name the broker, the lab, the queue type and the
    dead-letter bounds, so every service of a lab declares the same things the same way."""
    return connect(settings.amqp_url, kind=settings.bus, lab=settings.lab, client_name=client_name,
                   spool_path=spool_path, queue_type=settings.queue_type, dead_letter=settings.dead_letter)
