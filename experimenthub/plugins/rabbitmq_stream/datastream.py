"""The RabbitMQ datastream plugin: a durable queue per experiment; nothing is acknowledged before
the work that used it succeeded, nothing malformed is retried forever.

The queue operations and the settling of the Batches they return run on the I/O thread
(:mod:`.io_thread`), whatever thread calls them: a Batch's messages are held, unacknowledged, on a
delivery channel of that connection, one per queue, and ``ack``/``nack``/``reject`` go out on that
same channel. Settling a Batch whose connection was lost since does nothing there (RabbitMQ put its
messages back); when they were used, the stream acknowledges them again once it is connected (and a
redelivery is skipped, see :mod:`.redelivery`).

Dead letters: ``Batch.reject(i, reason)`` publishes a copy (confirmed) to the direct exchange
``experimenthub.dead-letter`` with routing key ``<queue>``, bound to the durable queue
``<queue>.dead``, with the reason in the header ``x-experimenthub-error`` (and the source queue in
``x-experimenthub-queue``); then it acknowledges the original.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions as px

from ...errors import DatastreamError
from ...redact import redact_text
from ..protocols import Batch, DeadLetter, Health
from .amqp import (
    CONTENT_TYPE,
    DEAD_LETTER_EXCHANGE,
    DEAD_SUFFIX,
    ERROR_HEADER,
    HEALTH_WAIT,
    PREFETCH_MAX,
    QUEUE_HEADER,
    declare,
)
from .consumer import ConsumerContext, RabbitMQConsumer
from .io_thread import DeliveryChannel, IOThread
from .redelivery import Consumed

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Held:
    """Where the messages of a Batch were delivered: settling checks it is still that channel."""

    queue: str
    serial: int
    tags: list[int]
    properties: list[Any]


class RabbitMQDatastream(IOThread):
    """DatastreamPlugin over RabbitMQ. ``RabbitMQDatastream("amqp://guest:guest@127.0.0.1:5672/%2F")``.

    Construction never blocks on the broker: it connects in the background (a broker that is down
    at start is retried with backoff; ``health()`` says so, calls raise DatastreamError).
    """

    def __init__(self, url: str) -> None:
        self._consumed = Consumed()
        self._consumers: set[RabbitMQConsumer] = set()
        self._consumer_context = ConsumerContext(consumed=self._consumed, parameters=self._parameters,
                                                 dead_letter=self._dead_letter, forget=self._forget,
                                                 recheck=self._recheck)
        super().__init__(url)  # validates the URL (InvalidConfig), then starts the I/O thread

    def __repr__(self) -> str:
        return f"<RabbitMQDatastream {self.host}:{self.port} {self._status}>"

    # -- the plugin API (any thread) -----------------------------------------------------------
    def health(self) -> Health:
        self._answered.wait(HEALTH_WAIT)
        with self._state_lock:
            status, error, last_error = self._status, self._error, self._last_error
            reconnects, outages = max(0, self._connects - 1), self._outages
            consumers = [c.describe() for c in self._consumers]
        connected = status == "connected"
        if status == "connecting":
            error = f"no answer from the broker within {HEALTH_WAIT} s (still trying)"
        healthy = connected and all(c["status"] == "connected" for c in consumers)
        if connected and not healthy:
            error = next(f"consumer of queue {c['queue']!r}: {c['error'] or c['status']}"
                         for c in consumers if c["status"] != "connected")
        # /health is served over REST: a broker or driver message quoting the URL must not carry its password
        consumers = [{**c, "error": _redacted(c.get("error"))} for c in consumers]
        return {"healthy": healthy, "details": {
            "status": "connected" if healthy else "unreachable", "backend": "rabbitmq", "host": self.host,
            "port": self.port, "vhost": self.vhost, "error": None if healthy else _redacted(error),
            "last_error": _redacted(last_error), "reconnects": reconnects, "outages": outages,
            "consumers": consumers}}

    def publish(self, queue: str, body: bytes) -> None:
        body = bytes(body)
        properties = pika.BasicProperties(content_type=CONTENT_TYPE, delivery_mode=2, message_id=uuid.uuid4().hex,
                                          timestamp=int(time.time()), app_id="experimenthub")

        def run() -> None:
            self._ensure_queue(queue)
            try:
                self._control.basic_publish("", queue, body, properties, mandatory=True)
            except px.UnroutableError:  # the queue was deleted since we declared it
                self._declared.discard(queue)
                self._ensure_queue(queue)
                self._control.basic_publish("", queue, body, properties, mandatory=True)

        self._call(run, f"publish to queue {queue!r}")

    def drain(self, queue: str) -> Batch | None:
        return self._call(lambda: self._take(queue, None), f"take the messages of queue {queue!r}")

    def next_batch(self, queue: str) -> Batch | None:
        return self._call(lambda: self._take(queue, 1), f"take the next message of queue {queue!r}")

    def purge(self, queue: str) -> int:
        def run() -> int:
            if self._passive(queue) is None:
                return 0
            return int(self._control.queue_purge(queue).method.message_count)

        return self._call(run, f"purge queue {queue!r}")

    def depth(self, queue: str) -> int:
        return self._call(lambda: self._passive(queue) or 0, f"count the messages of queue {queue!r}")

    def dead_letters(self, queue: str, limit: int = 10_000) -> list[DeadLetter]:
        """The messages rejected from ``queue`` (left in ``<queue>.dead``), oldest first."""
        dead = queue + DEAD_SUFFIX

        def run() -> list[DeadLetter]:
            if self._passive(dead) is None:
                return []
            channel = self._connection.channel()
            found: list[DeadLetter] = []
            try:
                while len(found) < limit:
                    method, properties, body = channel.basic_get(dead)
                    if method is None:
                        break
                    reason = (properties.headers or {}).get(ERROR_HEADER, "")
                    found.append(DeadLetter(body, reason.decode() if isinstance(reason, bytes) else str(reason)))
            finally:
                channel.close()  # everything taken goes back, in order
            return found

        return self._call(run, f"read the dead-letter queue {dead!r}")

    def consume(self, queue: str, callback: Callable[[Batch], None], prefetch: int = 1) -> RabbitMQConsumer:
        if self._closing.is_set():
            raise DatastreamError(f"Cannot consume queue {queue!r}: the RabbitMQ datastream is closed")
        consumer = RabbitMQConsumer(self._consumer_context, queue, callback, prefetch)
        with self._state_lock:
            self._consumers.add(consumer)
        consumer.start()
        return consumer

    def close(self) -> None:
        with self._state_lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            consumer.stop()
        self._stop_io()

    def _forget(self, consumer: RabbitMQConsumer) -> None:
        with self._state_lock:
            self._consumers.discard(consumer)

    def _dead_letter(self, queue: str, body: bytes, properties: Any, reason: str) -> None:
        """A streaming consumer's reject: the copy goes out on the I/O connection (its control
        channel confirms it); the consumer then acknowledges the original on its own connection."""
        self._call(lambda: self._publish_dead(queue, body, properties, reason),
                   f"move a message of queue {queue!r} to {queue + DEAD_SUFFIX!r}")

    # -- work done on the I/O thread --------------------------------------------------------------------
    def _passive(self, queue: str) -> int | None:
        """Ready messages in ``queue``; None when it does not exist."""
        try:
            return int(self._control.queue_declare(queue, passive=True).method.message_count)
        except px.ChannelClosedByBroker as exc:
            self._repair()
            if exc.reply_code == 404:
                return None
            raise

    def _reacknowledge(self, queue: str) -> None:
        """Acknowledge the used messages RabbitMQ put back at the head of ``queue`` (their first
        ack was lost with a connection, or forgotten by a broker that crashed), up to the first
        one not used, which stays where it is. Without this they would wait in the queue for the
        next drain of this stream to skip them, while another process (a restarted kernel, a
        second hub) would use them again. While a consumer of this stream consumes the queue, it is
        left to it: it skips the copies itself and asks for this once it ends."""
        with self._state_lock:
            live = [consumer for consumer in self._consumers if consumer.queue == queue]
            for consumer in live:  # it skips the copies itself; taking them from under it would race it
                consumer.recheck_when_stopped()
        if live:
            return
        count = self._passive(queue)
        if not count:
            return
        channel = self._connection.channel()
        acked = 0
        try:
            for _ in range(count):
                method, properties, body = channel.basic_get(queue)
                if method is None:
                    break
                if not self._consumed.used(method.redelivered, properties, body):
                    channel.basic_nack(method.delivery_tag, requeue=True)  # back to the head, in order
                    break
                channel.basic_ack(method.delivery_tag)
                acked += 1
            _barrier(channel)
        finally:
            if channel.is_open:
                channel.close()
        if acked:
            log.warning("acknowledged %d used message(s) that RabbitMQ put back in queue %r", acked, queue)

    def _ensure_queue(self, queue: str) -> None:
        if queue not in self._declared:
            declare(self._connection, queue)
            self._declared.add(queue)

    def _delivery(self, queue: str) -> DeliveryChannel:
        channel = self._channels.get(queue)
        if channel is None or not channel.channel.is_open:
            channel = DeliveryChannel(self._connection.channel(), next(self._serials), set())
            self._channels[queue] = channel
        return channel

    def _take(self, queue: str, limit: int | None) -> Batch | None:
        while True:
            count = self._passive(queue)
            if not count:
                return None
            channel = self._delivery(queue)
            deliveries = self._get(channel, queue, count if limit is None else min(count, limit))
            kept = []
            used = self._consumed.used_all([(m.redelivered, p, b) for m, p, b in deliveries])
            for (method, properties, body), seen in zip(deliveries, used, strict=True):
                if seen:
                    channel.channel.basic_ack(method.delivery_tag)  # used already; its ack was lost
                    log.info("skipped a message of queue %r that was used already", queue)
                else:
                    kept.append((method, properties, body))
            if kept or not deliveries:
                break
        if not kept:
            return None
        held = _Held(queue, channel.serial, [m.delivery_tag for m, _, _ in kept], [p for _, p, _ in kept])
        channel.outstanding.update(held.tags)

        def settle(ok: bool) -> None:
            self._settle(batch, held, ok)

        def reject(index: int, reason: str) -> None:
            self._reject(batch, held, index, reason)

        batch = Batch(queue, [body for _, _, body in kept], settle, _reject=reject)
        return batch

    def _get(self, channel: DeliveryChannel, queue: str, count: int) -> list[tuple[Any, Any, bytes]]:
        """Up to ``count`` messages, unacknowledged: one basic_get, or a consumer with that prefetch."""
        if count == 1:
            method, properties, body = channel.channel.basic_get(queue)
            return [] if method is None else [(method, properties, body)]
        found: list[tuple[Any, Any, bytes]] = []
        while len(found) < count:
            chunk = min(count - len(found), PREFETCH_MAX)
            got: list[tuple[Any, Any, bytes]] = []
            channel.channel.basic_qos(prefetch_count=chunk)
            tag = channel.channel.basic_consume(queue, functools.partial(_collect, got))
            idle_since = time.monotonic()
            while len(got) < chunk:
                before = len(got)
                self._connection.process_data_events(time_limit=0.1)
                if len(got) > before:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 0.3:
                    break  # someone else took the rest meanwhile
            channel.channel.basic_cancel(tag)
            found.extend(got)
            if len(got) < chunk:
                break
        return found

    # -- settling a Batch (any thread; the work goes to the I/O thread) ---------------------------------
    def _settle(self, batch: Batch, held: _Held, ok: bool) -> None:
        """Batch.ack / Batch.nack, from any thread; never raises (a lost ack means a requeue)."""
        indices = [i for i in range(len(held.tags)) if i not in batch.rejected]
        if ok:
            self._consumed.remember_all([(held.properties[i], batch.bodies[i]) for i in indices], ack_lost=False)
        what = f"{'acknowledge' if ok else 'requeue'} {len(indices)} message(s) of queue {held.queue!r}"
        try:
            applied = self._call(lambda: self._settle_io(held, indices, ok), what, retry=False)
        except DatastreamError as exc:
            log.warning("%s", exc)
            applied = False
        if not applied:
            log.warning("%d message(s) of queue %r were taken on a RabbitMQ connection lost since; the broker put "
                        "them back in the queue%s", len(indices), held.queue,
                        " (they were used: their redelivery will be skipped)" if ok else "")
            if ok:
                self._consumed.remember_all([(held.properties[i], batch.bodies[i]) for i in indices], ack_lost=True)
                self._recheck(held.queue)  # acknowledge them again once connected: no one may use them again

    def _current(self, held: _Held) -> DeliveryChannel | None:
        channel = self._channels.get(held.queue)
        if channel is None or channel.serial != held.serial or not channel.channel.is_open:
            return None
        return channel

    def _settle_io(self, held: _Held, indices: list[int], ok: bool) -> bool:
        channel = self._current(held)
        if channel is None:
            return False
        tags = [held.tags[i] for i in indices]
        if not tags:
            return True
        whole = set(tags) == channel.outstanding  # then one frame settles them all
        for tag in [max(tags)] if whole else tags:
            if ok:
                channel.channel.basic_ack(tag, multiple=whole)
            else:
                channel.channel.basic_nack(tag, multiple=whole, requeue=True)
        channel.outstanding.difference_update(tags)
        _barrier(channel.channel)
        return True

    def _reject(self, batch: Batch, held: _Held, index: int, reason: str) -> None:
        body, properties = batch.bodies[index], held.properties[index]

        def run() -> bool:
            channel = self._current(held)
            if channel is None:
                return False
            self._publish_dead(held.queue, body, properties, reason)
            tag = held.tags[index]
            channel.channel.basic_ack(tag)
            channel.outstanding.discard(tag)
            _barrier(channel.channel)
            return True

        dead = held.queue + DEAD_SUFFIX
        if not self._call(run, f"move a message of queue {held.queue!r} to {dead!r}", retry=False):
            raise DatastreamError(f"Cannot move a message of queue {held.queue!r} to {dead!r}: the connection that "
                                  f"delivered it was lost; RabbitMQ put it back in the queue")
        self._consumed.remember(properties, body, ack_lost=False)
        log.warning("message of queue %r moved to %r: %s", held.queue, dead, reason)

    def _publish_dead(self, queue: str, body: bytes, properties: Any, reason: str) -> None:
        headers = dict(getattr(properties, "headers", None) or {})
        headers[ERROR_HEADER] = str(reason)[:4000]
        headers[QUEUE_HEADER] = queue
        copy = pika.BasicProperties(
            content_type=getattr(properties, "content_type", None) or CONTENT_TYPE, delivery_mode=2,
            message_id=getattr(properties, "message_id", None), timestamp=getattr(properties, "timestamp", None),
            app_id=getattr(properties, "app_id", None), headers=headers)
        dead = queue + DEAD_SUFFIX
        if dead not in self._declared:
            declare(self._connection, queue)
            self._declared.add(dead)
        try:
            self._control.basic_publish(DEAD_LETTER_EXCHANGE, queue, body, copy, mandatory=True)
        except px.UnroutableError:  # the dead-letter queue was deleted since: declare it again
            declare(self._connection, queue)
            self._control.basic_publish(DEAD_LETTER_EXCHANGE, queue, body, copy, mandatory=True)


def _barrier(channel: Any) -> None:
    """A synchronous round trip on ``channel``: acks and nacks sent before it (asynchronous in AMQP)
    have been processed by the broker when it returns, so depth() and other consumers see them."""
    channel.basic_qos(prefetch_count=0)


def _collect(into: list[tuple[Any, Any, bytes]], _channel: Any, method: Any, properties: Any, body: bytes) -> None:
    into.append((method, properties, body))


def _redacted(text: str | None) -> str | None:
    return None if text is None else redact_text(text)
