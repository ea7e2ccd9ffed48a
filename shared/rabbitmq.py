"""The RabbitMQ adapter of the bus: the only module of mlpower that imports pika.

pika's BlockingConnection is not thread-safe, so the bus keeps one connection for publishing
(guarded by a lock, with publisher confirms) and one connection per subscription, owned by that
subscription's consumer thread. Both reconnect with capped exponential backoff.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
from mlpower import topology
from mlpower.bus import DeadLetter, Delivery, Handler, handle_body
from mlpower.errors import BusError
from mlpower.schema import Message, encode
from mlpower.spool import Spool, Spooled

log = logging.getLogger(__name__)
# pika narrates every connection and channel step at INFO: pages of it at each service's start-up,
# none of it news to a user. Its warnings and errors still show; our own log says what connected.
logging.getLogger("pika").setLevel(logging.WARNING)

REASON_HEADER = "x-mlpower-reason"
PRECONDITION_FAILED = 406
_RECOVERABLE = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    ConnectionError,
    OSError,
)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, fit for a message or a log."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<an unparseable URL>"


def _parameters(url: str, client_name: str, heartbeat: int | None) -> pika.URLParameters:
    try:
        params = pika.URLParameters(url)
    except Exception as exc:  # pika's message may quote the URL, password and all
        detail = str(exc).replace(url, redact_url(url))
        raise BusError(f"AMQP_URL {redact_url(url)!r} is not an AMQP URL: {detail}") from None
    params.client_properties = {"connection_name": client_name}
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    if heartbeat is not None:
        params.heartbeat = heartbeat
    return params


class TopologyMismatch(BusError):
    """The broker holds a queue or exchange of this name declared with other arguments.

    RabbitMQ refuses such a redeclare (PRECONDITION_FAILED) and no retry can change that, so it is
    not retried: the message names the queue and how to clear it.
    """


@dataclass(frozen=True)
class LabTopology:
    """What one bus declares besides its queues: the exchanges and its lab's dead-letter path."""

    lab: str = "lab"
    dead_letter: topology.DeadLetterPolicy = topology.DeadLetterPolicy()
    queue_type: str = "classic"  # of the durable shared queues (MLPOWER_QUEUE_TYPE)

    @property
    def dead_letter_exchange(self) -> str:
        return topology.dead_letter_exchange(self.lab)

    @property
    def dead_letter_queue(self) -> str:
        return topology.dead_letter_queue(self.lab)


def _mismatch(kind: str, name: str, exc: Exception) -> TopologyMismatch:
    return TopologyMismatch(
        f"the broker already has {kind} {name!r} with other arguments ({exc}); it was declared by an older "
        f"mlpower or with other MLPOWER_DEAD_LETTER_* settings: delete it (rabbitmqctl delete_queue {name} "
        f"-p <vhost>) or use the same settings as the services that declared it")


def _declare(kind: str, name: str, declare: Any) -> Any:
    try:
        return declare()
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED:
            raise _mismatch(kind, name, exc) from None
        raise


def declare_topology(channel: Any, lab: LabTopology) -> None:
    for exchange in topology.TOPIC_EXCHANGES:
        _declare("exchange", exchange,
                 functools.partial(channel.exchange_declare, exchange=exchange, exchange_type="topic", durable=True))
    _declare("exchange", lab.dead_letter_exchange, lambda: channel.exchange_declare(
        exchange=lab.dead_letter_exchange, exchange_type="fanout", durable=True))
    # of the bus's type too: a classic queue lives on one node, and while that node is down
    # declaring it fails, which would keep every client of the cluster from (re)connecting
    arguments = lab.dead_letter.arguments()
    if lab.queue_type != "classic":
        arguments["x-queue-type"] = lab.queue_type
    _declare("queue", lab.dead_letter_queue, lambda: channel.queue_declare(
        queue=lab.dead_letter_queue, durable=True, arguments=arguments))
    channel.queue_bind(queue=lab.dead_letter_queue, exchange=lab.dead_letter_exchange)


QUEUE_TYPES = ("classic", "quorum")


def queue_arguments(spec: topology.QueueSpec, lab: LabTopology) -> dict[str, object]:
    """What a queue is declared with: its lab's dead-letter path, one active consumer where the spec
    asks, and the bus's queue type for durable shared queues (exclusive ones are always classic: a
    quorum queue cannot be exclusive, and a listener's queue dies with it anyway)."""
    arguments: dict[str, object] = {"x-dead-letter-exchange": lab.dead_letter_exchange}
    if spec.single_active_consumer:
        arguments["x-single-active-consumer"] = True
    if lab.queue_type != "classic" and spec.durable and not spec.exclusive:
        arguments["x-queue-type"] = lab.queue_type
    return {**arguments, **spec.arguments}


def declare_queue(channel: Any, spec: topology.QueueSpec, lab: LabTopology) -> str:
    arguments = queue_arguments(spec, lab)
    result = _declare("queue", spec.name, lambda: channel.queue_declare(
        queue=spec.name,
        durable=spec.durable and not spec.exclusive,
        exclusive=spec.exclusive,
        auto_delete=spec.exclusive,
        arguments=arguments,
    ))
    name: str = result.method.queue
    for pattern in spec.patterns:
        channel.queue_bind(queue=name, exchange=spec.exchange, routing_key=pattern)
    return name


def _dead_letter_of(method: Any, properties: Any, body: bytes, preview_bytes: int | None) -> DeadLetter:
    """The reason our consumers set, else the broker's own (``x-death``: rejected, expired, maxlen)."""
    headers = dict(properties.headers or {})
    reason = _text(headers.get(REASON_HEADER))
    exchange = _text(headers.get("x-mlpower-exchange", method.exchange))
    if not reason:
        deaths = headers.get("x-death") or [{}]
        death = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
        reason = f"broker: {_text(death.get('reason', 'rejected'))} in {_text(death.get('queue', '?'))}"
        exchange = _text(death.get("exchange", exchange))
    return DeadLetter.of(body, reason, exchange, method.routing_key, preview_bytes)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


class _Backoff:
    def __init__(self, first_s: float = 0.2, cap_s: float = 5.0) -> None:
        self.first_s, self.cap_s, self.next_s = first_s, cap_s, first_s

    def wait(self, stop: threading.Event | None = None) -> None:
        if stop is not None:
            stop.wait(self.next_s)
        else:
            time.sleep(self.next_s)
        self.next_s = min(self.cap_s, self.next_s * 2)

    def reset(self) -> None:
        self.next_s = self.first_s


class _RabbitSubscription:
    def __init__(self, bus: RabbitMQBus, spec: topology.QueueSpec, handler: Handler) -> None:
        self.queue_name = spec.name
        self._bus, self._spec, self._handler = bus, spec, handler
        self._stop = threading.Event()
        self._crash = threading.Event()
        self._ready = threading.Event()
        self._failure: BusError | None = None
        self._connection: Any = None
        self._channel: Any = None
        self._consuming = False
        self._thread = threading.Thread(target=self._run, name=f"rabbit-consumer-{spec.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=15):
            self.close()
            raise BusError(f"could not start consuming {spec.name!r} from {bus.url_for_logs}")
        if self._failure is not None:
            self.close()
            raise self._failure

    def _run(self) -> None:
        backoff = _Backoff()
        while not self._stop.is_set():
            try:
                self._consume()
                backoff.reset()
            except TopologyMismatch as exc:  # no retry can fix it: tell the subscriber and stop
                log.error("consumer of %s: %s", self._spec.name, exc)
                self._failure = exc
                self._ready.set()
                break
            except _RECOVERABLE as exc:
                self._consuming = False
                if self._stop.is_set():
                    break
                log.warning("consumer of %s lost the broker (%s); reconnecting", self._spec.name, exc)
                backoff.wait(self._stop)
        self._close_connection()

    def _consume(self) -> None:
        self._connection = pika.BlockingConnection(_parameters(self._bus.url, self._bus.client_name, None))
        channel = self._channel = self._connection.channel()
        channel.confirm_delivery()
        declare_topology(channel, self._bus.topology)
        name = declare_queue(channel, self._spec, self._bus.topology)
        self.queue_name = name
        channel.basic_qos(prefetch_count=self._spec.prefetch)
        channel.basic_consume(queue=name, on_message_callback=self._on_message, auto_ack=False)
        self._consuming = True
        self._ready.set()
        while not self._stop.is_set():
            self._connection.process_data_events(time_limit=0.2)

    @property
    def connected(self) -> bool:
        return self._consuming and not self._stop.is_set()

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        if self._stop.is_set():
            return  # not acked: redelivered to the next consumer
        deferred = self._spec.ack == "handler"
        delivery = Delivery(
            routing_key=method.routing_key,
            exchange=method.exchange,
            redelivered=bool(method.redelivered),
            headers=dict(properties.headers or {}),
            settle=(lambda: self._settle(channel, method.delivery_tag)) if deferred else (lambda: None),
        )
        reason = handle_body(body, delivery, self._handler)
        if self._crash.is_set():
            return
        if deferred and reason is None:
            return  # the handler settles it (see _settle)
        if reason is not None:
            headers = {**delivery.headers, REASON_HEADER: reason[:1000], "x-mlpower-exchange": method.exchange}
            channel.basic_publish(
                exchange=self._bus.topology.dead_letter_exchange,
                routing_key=method.routing_key,
                body=body,
                properties=pika.BasicProperties(delivery_mode=2, headers=headers),
            )
        channel.basic_ack(delivery_tag=method.delivery_tag)

    def _settle(self, channel: Any, delivery_tag: int) -> None:
        """Acknowledge a message the handler kept. A tag belongs to its channel: after a reconnect
        the broker has requeued the old channel's messages, which come again and are settled then."""
        if self._crash.is_set() or channel is not self._channel or not channel.is_open:
            return
        channel.basic_ack(delivery_tag=delivery_tag)

    def _close_connection(self) -> None:
        self._consuming = False
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # closing a broken connection may fail in many ways; it is gone either way
                log.debug("closing consumer connection failed", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    def abort(self) -> None:
        self._crash.set()
        self.close()


class RabbitMQBus:
    def __init__(self, url: str, *, client_name: str = "mlpower", publish_timeout_s: float = 30.0,
                 spool_path: Path | None = None, queue_type: str = "classic", lab: str = "lab",
                 dead_letter: topology.DeadLetterPolicy | None = None) -> None:
        if queue_type not in QUEUE_TYPES:
            raise BusError(f"queue type {queue_type!r} is not one of {', '.join(QUEUE_TYPES)}")
        self.url = url
        self.topology = LabTopology(lab, dead_letter or topology.DeadLetterPolicy(), queue_type)
        self.client_name = client_name
        self.queue_type = queue_type
        self.publish_timeout_s = publish_timeout_s
        _parameters(url, client_name, 0)  # validate early
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None
        self._subscriptions: list[_RabbitSubscription] = []
        self._spool = Spool(spool_path)
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None
        with self._lock:
            self._ensure_channel()
        if len(self._spool):
            self._start_flusher()  # what a previous process spooled and never got confirmed

    @property
    def url_for_logs(self) -> str:
        params = pika.URLParameters(self.url)
        return f"amqp://{params.host}:{params.port}{params.virtual_host}"

    def _ensure_channel(self) -> Any:
        if self._channel is not None and self._channel.is_open and self._connection.is_open:
            return self._channel
        try:
            # Heartbeats need the I/O loop to run; an idle publisher does not run it, so it relies on
            # publish errors and reconnects instead of being dropped between publishes.
            self._connection = pika.BlockingConnection(_parameters(self.url, self.client_name, 0))
            channel = self._connection.channel()
            channel.confirm_delivery()
            declare_topology(channel, self.topology)
        except TopologyMismatch:
            self._close_after_refusal()
            raise
        except _RECOVERABLE as exc:
            self._connection = self._channel = None
            raise BusError(f"RabbitMQ at {self.url_for_logs} does not answer: {exc}") from exc
        self._channel = channel
        return channel

    def _with_channel(self, operation: str, action: Any) -> Any:
        deadline = time.monotonic() + self.publish_timeout_s
        backoff = _Backoff()
        while True:
            with self._lock:
                try:
                    return action(self._ensure_channel())
                except pika.exceptions.UnroutableError:
                    return None  # no queue bound: nobody asked for it, which is not a failure
                except TopologyMismatch:
                    self._channel = None
                    raise
                except (*_RECOVERABLE, BusError) as exc:
                    self._channel = None
                    if time.monotonic() >= deadline:
                        raise BusError(f"{operation} failed after retries: {exc}") from exc
                    log.warning("%s failed (%s); reconnecting", operation, exc)
            backoff.wait()

    def publish(self, message: Message, routing_key: str) -> None:
        self.publish_raw(topology.exchange_for(message), routing_key, encode(message))

    def publish_raw(self, exchange: str, routing_key: str, body: bytes) -> None:
        """Publish with a broker confirm; when the broker is away, spool and return at once.

        Order is kept: once anything is spooled, later messages queue behind it until the
        flusher has replayed the spool.
        """
        item = Spooled(exchange, routing_key, body)
        with self._lock:
            if not len(self._spool):
                try:
                    self._publish_now(item)
                    return
                except TopologyMismatch:
                    raise
                except (*_RECOVERABLE, BusError) as exc:
                    self._channel = None
                    log.warning("publish to %s/%s failed (%s); spooling until the broker is back",
                                exchange, routing_key, exc)
            self._spool.append(item)
        self._start_flusher()

    def _publish_now(self, item: Spooled) -> None:
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        self._ensure_channel().basic_publish(
            exchange=item.exchange, routing_key=item.routing_key, body=item.body, properties=properties
        )

    @property
    def pending(self) -> int:
        """Messages spooled and not yet confirmed by the broker."""
        return len(self._spool)

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is None or not self._flusher.is_alive():
                self._flusher = threading.Thread(target=self._flush_loop, name="rabbit-spool-flusher", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        # a short cap: heartbeats and phase events queued here are judged by how late they arrive
        backoff = _Backoff(cap_s=2.0)
        while not self._closed.is_set():
            item = self._spool.head()
            if item is None:
                return
            with self._lock:
                try:
                    self._publish_now(item)
                    self._spool.pop_head()
                    backoff.reset()
                    continue
                except (*_RECOVERABLE, BusError):
                    self._channel = None
            backoff.wait(self._closed)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every spooled message is confirmed; False when time ran out."""
        deadline = time.monotonic() + timeout_s
        while len(self._spool) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not len(self._spool)

    def declare(self, spec: topology.QueueSpec) -> None:
        self._with_channel(f"declare {spec.name}", lambda ch: declare_queue(ch, spec, self.topology))

    def subscribe(self, spec: topology.QueueSpec, handler: Handler) -> _RabbitSubscription:
        subscription = _RabbitSubscription(self, spec, handler)
        self._subscriptions.append(subscription)
        return subscription

    def dead_letters(self, limit: int = 100, *, keep: bool = False,
                     preview_bytes: int | None = None) -> list[DeadLetter]:
        def take(channel: Any) -> list[DeadLetter]:
            taken: list[DeadLetter] = []
            last_tag = None
            while len(taken) < limit:
                method, properties, body = channel.basic_get(queue=self.topology.dead_letter_queue, auto_ack=not keep)
                if method is None:
                    break
                last_tag = method.delivery_tag
                taken.append(_dead_letter_of(method, properties, body, preview_bytes))
            if keep and last_tag is not None:  # back where they were: shown, not taken
                channel.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
                # The broker requeues after it answers; wait (briefly) until it counts them again, so
                # whoever looks next finds them, as "shown, not taken" promises.
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline:
                    queue = channel.queue_declare(queue=self.topology.dead_letter_queue, passive=True)
                    if queue.method.message_count >= len(taken):
                        break
                    time.sleep(0.01)
            return taken

        result: list[DeadLetter] = self._with_channel("read dead letters", take)
        return result

    def dead_letter_depth(self) -> int:
        """Messages waiting in this lab's dead-letter queue (a passive declare: changes nothing).

        One attempt, no retries: a metrics scrape asks, and must not wait out a broker outage.
        """
        with self._lock:
            try:
                result = self._ensure_channel().queue_declare(queue=self.topology.dead_letter_queue, passive=True)
            except _RECOVERABLE as exc:
                self._channel = None
                raise BusError(f"cannot count dead letters at {self.url_for_logs}: {exc}") from exc
        return int(result.method.message_count)

    def purge(self, queue_name: str) -> None:
        def purge(channel: Any) -> None:
            try:
                channel.queue_purge(queue=queue_name)
            except pika.exceptions.ChannelClosedByBroker:
                self._channel = None  # no such queue: nothing to purge

        self._with_channel(f"purge {queue_name}", purge)

    def queue_depth(self, queue_name: str) -> tuple[int, int] | None:
        """(messages ready, consumers) of a queue, or None when there is no such queue."""
        def depth(channel: Any) -> tuple[int, int] | None:
            try:
                method = channel.queue_declare(queue=queue_name, passive=True).method
            except pika.exceptions.ChannelClosedByBroker:
                self._channel = None  # 404: no such queue
                return None
            return int(method.message_count), int(method.consumer_count)

        found: tuple[int, int] | None = self._with_channel(f"depth of {queue_name}", depth)
        return found

    def delete_queue(self, queue_name: str) -> None:
        self._with_channel(f"delete {queue_name}", lambda ch: ch.queue_delete(queue=queue_name))

    def _close_after_refusal(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except _RECOVERABLE:
                pass

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        if len(self._spool):
            self.flush(timeout_s=5.0)
        self._closed.set()
        with self._lock:
            if self._connection is not None and self._connection.is_open:
                try:
                    self._connection.close()
                except _RECOVERABLE:
                    pass
            self._connection = self._channel = None
