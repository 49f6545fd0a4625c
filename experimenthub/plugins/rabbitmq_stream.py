"""The RabbitMQ datastream (pika): a durable queue per experiment; nothing is acknowledged before
the work that used it succeeded, nothing malformed is retried forever.

Threading (a pika ``BlockingConnection`` is not thread-safe, pika#1237):

* One I/O thread owns the main connection. Every call (``publish``, ``drain``, ``next_batch``,
  ``purge``, ``depth``, ``dead_letters``) and every settlement of a Batch (``ack``, ``nack``,
  ``reject``) is handed to it as a request, whatever thread makes it; so acks always go out on the
  connection and channel that delivered the messages. Between requests the thread services
  heartbeats (``process_data_events``); ``add_callback_threadsafe`` wakes it for a new request.
* Each ``consume`` (streaming) runs its own thread with its own connection, ``basic_qos`` and
  ``basic_consume``; its Batches are settled through ``add_callback_threadsafe`` on that
  connection, so the work itself happens elsewhere and heartbeats keep flowing (pika#418).

Reconnecting: a lost connection is reopened with backoff (0, 0.25, 0.5, 1, 2, 2, ... s). RabbitMQ
puts back every message the lost connection held unacknowledged; a Batch taken on it is stale and
settling it does nothing on the new connection (its delivery tags would name other messages). So
that a redelivered message is not used twice, the stream remembers the ``message_id`` of every
message it consumed (the hub's publisher sets one; so should others) and, for messages without
one, the body digest of those whose ack was known to be lost; such a message is acknowledged and
skipped when it comes again.

Dead letters: ``Batch.reject(i, reason)`` publishes a copy (confirmed) to the direct exchange
``experimenthub.dead-letter`` with routing key ``<queue>``, bound to the durable queue
``<queue>.dead``, with the reason in the header ``x-experimenthub-error`` (and the source queue in
``x-experimenthub-queue``); then it acknowledges the original. The experiment queues themselves
are plain durable queues without arguments, so any publisher may declare them with
``queue_declare(name, durable=True)``; an existing queue is used as it is (passive declare first).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import itertools
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions as px

from ..errors import DatastreamError, InvalidConfig
from .protocols import Batch, DeadLetter, Health

log = logging.getLogger(__name__)
if logging.getLogger("pika").level == logging.NOTSET:
    # pika logs every failed connection attempt at ERROR with a traceback; this module reports
    # outages itself (one warning per change) and health() says why. Configure "pika" to see them.
    logging.getLogger("pika").setLevel(logging.CRITICAL)

DEAD_LETTER_EXCHANGE = "experimenthub.dead-letter"
DEAD_SUFFIX = ".dead"
ERROR_HEADER = "x-experimenthub-error"
QUEUE_HEADER = "x-experimenthub-queue"
CONTENT_TYPE = "application/json"
BACKOFF = (0.0, 0.25, 0.5, 1.0, 2.0)  # seconds before reconnect attempt n (the last one repeats)
REQUEST_TIMEOUT = 15.0  # a call that gets no answer in this time raises DatastreamError
HEALTH_WAIT = 1.5  # health() waits at most this long for the first connection attempt
STOP_GRACE = 0.5  # a stopping consumer lets acks already handed to it go out for this long
HANDOVER_WAIT = 60.0  # a reconnected consumer waits this long at most for the old batches to settle
_CONNECTION_DEFAULTS: dict[str, Any] = {
    "socket_timeout": 2.0, "stack_timeout": 4.0, "blocked_connection_timeout": 30.0,
    "connection_attempts": 1, "retry_delay": 0.0, "heartbeat": 20,
}
_LOST = (px.AMQPConnectionError, OSError)  # the connection is gone: reconnect
_PREFETCH_MAX = 65535  # basic_qos prefetch_count is an unsigned short


def _noop() -> None:
    pass


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def connection_parameters(url: str, connection_name: str) -> pika.URLParameters:
    """pika parameters for ``url`` with short timeouts (unless the URL's query sets them), so that
    an unreachable broker is reported in seconds, never by a hang."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise InvalidConfig(f"{url!r} is not an AMQP URL; example: amqp://guest:guest@127.0.0.1:5672/%2F",
                            "rabbitmq_url")
    try:
        params = pika.URLParameters(url)
    except Exception as exc:
        raise InvalidConfig(f"cannot read the AMQP URL {safe_url(url)}: {exc}", "rabbitmq_url") from exc
    given = set(urllib.parse.parse_qs(parts.query))
    for key, value in _CONNECTION_DEFAULTS.items():
        if key not in given:
            setattr(params, key, value)
    params.client_properties = {"connection_name": connection_name}
    return params


def describe(exc: BaseException) -> str:
    """A pika exception in words a person can act on."""
    if isinstance(exc, px.ConnectionClosedByBroker):
        return f"the broker closed the connection ({exc.reply_code} {exc.reply_text})"
    if isinstance(exc, px.ChannelClosedByBroker):
        return f"{exc.reply_code} {exc.reply_text}"
    if isinstance(exc, (px.ProbableAuthenticationError, px.AuthenticationError)):
        return "the broker refused the login; check the user and password in the URL"
    if isinstance(exc, px.ProbableAccessDeniedError):
        return "the broker refused access to the virtual host; check the vhost in the URL and the user's permissions"
    if isinstance(exc, px.ConnectionBlockedTimeout):
        return "the broker blocked the connection for too long (a memory or disk alarm?)"
    if isinstance(exc, px.AMQPHeartbeatTimeout):
        return "the broker stopped answering (heartbeat timeout)"
    if isinstance(exc, px.IncompatibleProtocolError):
        return f"the server closed the connection during the AMQP handshake ({', '.join(map(str, exc.args))})"
    if isinstance(exc, px.StreamLostError):
        text = str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc)
        return f"the connection was lost ({text})"
    inner: BaseException = exc
    for _ in range(5):  # pika wraps socket errors: AMQPConnectionError(AMQPConnector...Error(exception=OSError))
        if isinstance(getattr(inner, "exception", None), BaseException):
            inner = inner.exception  # type: ignore[attr-defined]
        elif inner.args and isinstance(inner.args[0], BaseException):
            inner = inner.args[0]
        else:
            break
    if inner is not exc and isinstance(inner, px.AMQPError):
        return describe(inner)
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror.lower()
    if isinstance(inner, TimeoutError | px.AMQPConnectionError) and not str(inner):
        return "no answer (timeout)"
    return str(inner) or type(inner).__name__


def declare(connection: Any, queue: str) -> None:
    """Make sure ``queue``, its dead-letter queue and their binding exist. Existing queues are used
    as they are (passive declare first); refusals close only a throwaway channel."""
    channel = connection.channel()
    try:
        for name in (queue, queue + DEAD_SUFFIX):
            try:
                channel.queue_declare(name, passive=True)
            except px.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                channel = connection.channel()
                channel.queue_declare(name, durable=True)
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, "direct", durable=True)
        channel.queue_bind(queue + DEAD_SUFFIX, DEAD_LETTER_EXCHANGE, routing_key=queue)
    finally:
        if channel.is_open:
            channel.close()


def _digest(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


class _Consumed:
    """Keys of messages already used (acknowledged or dead-lettered), to skip their redeliveries."""

    def __init__(self, size: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._digests: collections.OrderedDict[str, int] = collections.OrderedDict()

    def remember(self, properties: Any, body: bytes, ack_lost: bool) -> None:
        self.remember_all([(properties, body)], ack_lost)

    def remember_all(self, messages: list[tuple[Any, bytes]], ack_lost: bool) -> None:
        with self._lock:
            for properties, body in messages:
                message_id = getattr(properties, "message_id", None)
                if message_id:
                    self._ids[message_id] = None
                    self._ids.move_to_end(message_id)
                elif ack_lost:
                    key = _digest(body)
                    self._digests[key] = self._digests.get(key, 0) + 1
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)
            while len(self._digests) > self._size:
                self._digests.popitem(last=False)

    def used(self, redelivered: bool, properties: Any, body: bytes) -> bool:
        return self.used_all([(redelivered, properties, body)])[0]

    def used_all(self, messages: list[tuple[bool, Any, bytes]]) -> list[bool]:
        """For each (redelivered, properties, body): was it used already? (A digest match counts once.)"""
        found = []
        with self._lock:
            for redelivered, properties, body in messages:
                message_id = getattr(properties, "message_id", None)
                if message_id:
                    found.append(message_id in self._ids)
                    continue
                count = self._digests.get(_digest(body)) if redelivered and self._digests else None
                if count:
                    key = _digest(body)
                    if count == 1:
                        del self._digests[key]
                    else:
                        self._digests[key] = count - 1
                found.append(bool(count))
        return found


class _Request:
    """A call handed to the I/O thread; the caller waits on ``done``."""

    def __init__(self, fn: Callable[[], Any], what: str, retry: bool) -> None:
        self.fn, self.what, self.retry = fn, what, retry
        self.tries = 0
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.abandoned = False
        self._lock = threading.Lock()

    def finish(self, result: Any = None, error: BaseException | None = None) -> bool:
        """False when the caller stopped waiting (the result is then the I/O thread's to undo)."""
        with self._lock:
            if self.abandoned or self.done.is_set():
                return False
            self.result, self.error = result, error
            self.done.set()
            return True

    def abandon(self) -> bool:
        with self._lock:
            if self.done.is_set():
                return False
            self.abandoned = True
            return True


@dataclasses.dataclass
class _Channel:
    """A delivery channel of the I/O connection (one per queue, so that a refusal on one queue
    cannot requeue the messages held from another)."""

    channel: Any
    serial: int
    outstanding: set[int]


@dataclasses.dataclass
class _Held:
    """Where the messages of a Batch were delivered: settling checks it is still that channel."""

    queue: str
    serial: int
    tags: list[int]
    properties: list[Any]


class RabbitMQDatastream:
    """DatastreamPlugin over RabbitMQ. ``RabbitMQDatastream("amqp://guest:guest@127.0.0.1:5672/%2F")``.

    Construction never blocks on the broker: it connects in the background (a broker that is down
    at start is retried with backoff; ``health()`` says so, calls raise DatastreamError).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.id = uuid.uuid4().hex[:12]
        params = self._parameters("io")  # validates the URL (InvalidConfig)
        self.host, self.port, self.vhost = params.host, params.port, params.virtual_host
        self._consumed = _Consumed()
        self._requests: collections.deque[_Request] = collections.deque()
        self._wake_event = threading.Event()
        self._state_lock = threading.Lock()
        self._status = "connecting"
        self._error: str | None = None
        self._last_error: str | None = None
        self._connects = 0
        self._outages = 0
        self._answered = threading.Event()  # the first connection attempt ended
        self._closing = threading.Event()
        self._consumers: set[RabbitMQConsumer] = set()
        # owned by the I/O thread
        self._connection: Any = None
        self._control: Any = None
        self._channels: dict[str, _Channel] = {}
        self._declared: set[str] = set()
        self._serials = itertools.count(1)
        self._last_attempt = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"experimenthub-rabbitmq-{self.id}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<RabbitMQDatastream {self.host}:{self.port} {self._status}>"

    def _parameters(self, role: str) -> pika.URLParameters:
        """Connection names carry the stream's id: ``rabbitmqctl list_connections client_properties``."""
        return connection_parameters(self.url, f"experimenthub {self.id} {role}")

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
        return {"healthy": healthy, "details": {
            "status": "connected" if healthy else "unreachable", "backend": "rabbitmq", "host": self.host,
            "port": self.port, "vhost": self.vhost, "error": None if healthy else error,
            "last_error": last_error, "reconnects": reconnects, "outages": outages, "consumers": consumers}}

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
            found = []
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
        consumer = RabbitMQConsumer(self, queue, callback, prefetch)
        with self._state_lock:
            self._consumers.add(consumer)
        consumer._thread.start()
        return consumer

    def close(self) -> None:
        with self._state_lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            consumer.stop()
        self._closing.set()
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _forget(self, consumer: RabbitMQConsumer) -> None:
        with self._state_lock:
            self._consumers.discard(consumer)

    # -- handing calls to the I/O thread ------------------------------------------------------------
    def _call(self, fn: Callable[[], Any], what: str, retry: bool = True, timeout: float = REQUEST_TIMEOUT) -> Any:
        if threading.current_thread() is self._thread:
            try:
                return fn()
            except px.AMQPError as exc:
                raise DatastreamError(f"Cannot {what}: {describe(exc)}") from exc
        if self._closing.is_set():
            raise DatastreamError(f"Cannot {what}: the RabbitMQ datastream is closed")
        request = _Request(fn, what, retry)
        self._requests.append(request)
        self._wake()
        if not request.done.wait(timeout) and request.abandon():
            raise DatastreamError(f"Cannot {what}: RabbitMQ at {self.host}:{self.port} did not answer within "
                                  f"{timeout:.0f} s; check the broker (rabbitmqctl status)")
        if request.error is not None:
            raise request.error
        return request.result

    def _wake(self) -> None:
        self._wake_event.set()
        connection = self._connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(_noop)
            except Exception:  # closed meanwhile: the loop sees it
                pass

    def _unreachable(self, what: str, reason: str | None = None) -> str:
        return (f"Cannot {what}: RabbitMQ at {self.host}:{self.port} is unreachable ({reason or self._error}). "
                f"Start the broker (e.g. rabbitmq-server -detached) or fix rabbitmq_url / "
                f"EXPERIMENTHUB_RABBITMQ_URL; the hub keeps reconnecting in the background.")

    # -- the I/O thread --------------------------------------------------------------------------------
    def _loop(self) -> None:
        attempt, next_try = 0, 0.0
        while not self._closing.is_set():
            if self._connection is None:
                now = time.monotonic()
                if now >= next_try or (self._requests and now - self._last_attempt >= BACKOFF[1]):
                    if self._connect():
                        attempt = 0
                        continue
                    attempt += 1
                    next_try = time.monotonic() + BACKOFF[min(attempt, len(BACKOFF) - 1)]
                self._fail_pending()  # no connection for now: callers hear it at once, not after a timeout
                self._wake_event.wait(max(0.0, min(next_try - time.monotonic(), BACKOFF[1])))
                self._wake_event.clear()
                continue
            try:
                self._run_pending()
                if self._connection is not None:
                    self._connection.process_data_events(time_limit=0.5)
            except _LOST as exc:
                self._lost(exc)
                attempt, next_try = 0, 0.0  # try again at once, then back off
            except Exception as exc:  # never let the I/O thread die: start over on a new connection
                log.exception("RabbitMQ I/O thread: unexpected error; reconnecting")
                self._lost(exc)
                attempt, next_try = 0, 0.0
        self._shutdown()

    def _connect(self) -> bool:
        self._last_attempt = time.monotonic()
        connection = None
        try:
            connection = pika.BlockingConnection(self._parameters("io"))
            control = connection.channel()
            control.confirm_delivery()
        except Exception as exc:  # pika errors and socket errors alike: the broker is not there
            try:
                if connection is not None and connection.is_open:
                    connection.close()
            except Exception:
                pass
            reason = describe(exc)
            with self._state_lock:
                changed = self._status != "unreachable" or self._error != reason
                self._status, self._error, self._last_error = "unreachable", reason, reason
            if changed:
                log.warning("RabbitMQ at %s:%s unreachable (%s); retrying with backoff", self.host, self.port, reason)
            self._answered.set()
            return False
        self._connection, self._control = connection, control
        with self._state_lock:
            recovered = self._status == "unreachable" and self._connects > 0
            self._status, self._error = "connected", None
            self._connects += 1
        if recovered:
            log.warning("RabbitMQ at %s:%s reconnected", self.host, self.port)
        self._answered.set()
        return True

    def _lost(self, exc: BaseException) -> None:
        reason = describe(exc)
        log.warning("RabbitMQ connection to %s:%s lost (%s); reconnecting", self.host, self.port, reason)
        with self._state_lock:
            self._status, self._error, self._last_error = "unreachable", reason, reason
            self._outages += 1
        connection = self._connection
        self._connection = self._control = None
        self._channels.clear()  # batches taken on them are stale now: RabbitMQ requeued their messages
        self._declared.clear()
        try:
            if connection is not None and connection.is_open:
                connection.close()
        except Exception:
            pass

    def _run_pending(self) -> None:
        while self._requests and self._connection is not None:
            request = self._requests.popleft()
            if request.abandoned:
                continue
            try:
                result = request.fn()
            except _LOST as exc:
                if request.retry and request.tries == 0:
                    request.tries += 1
                    self._requests.appendleft(request)  # once more on the next connection
                else:
                    request.finish(error=DatastreamError(self._unreachable(request.what, describe(exc))))
                raise
            except px.AMQPChannelError as exc:
                if not self._connection.is_open:
                    raise px.StreamLostError(describe(exc)) from exc
                request.finish(error=DatastreamError(f"RabbitMQ refused to {request.what}: {describe(exc)}"))
                self._repair()
            except DatastreamError as exc:
                request.finish(error=exc)
            except Exception as exc:
                request.finish(error=DatastreamError(f"Cannot {request.what}: {type(exc).__name__}: {exc}"))
                self._repair()
            else:
                if not request.finish(result) and isinstance(result, Batch):
                    result.nack()  # its caller stopped waiting: the messages go back

    def _fail_pending(self) -> None:
        while self._requests:
            request = self._requests.popleft()
            request.finish(error=DatastreamError(self._unreachable(request.what)))

    def _repair(self) -> None:
        if self._control is None or not self._control.is_open:
            self._control = self._connection.channel()
            self._control.confirm_delivery()
        for queue, channel in list(self._channels.items()):
            if not channel.channel.is_open:
                del self._channels[queue]

    def _shutdown(self) -> None:
        while self._requests:
            self._requests.popleft().finish(error=DatastreamError("the RabbitMQ datastream is closed"))
        connection, self._connection = self._connection, None
        with self._state_lock:
            self._status, self._error = "closed", "closed"
        try:
            if connection is not None and connection.is_open:
                connection.close()  # unsettled messages go back to their queues
        except Exception:
            pass

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

    def _ensure_queue(self, queue: str) -> None:
        if queue not in self._declared:
            declare(self._connection, queue)
            self._declared.add(queue)

    def _delivery(self, queue: str) -> _Channel:
        channel = self._channels.get(queue)
        if channel is None or not channel.channel.is_open:
            channel = _Channel(self._connection.channel(), next(self._serials), set())
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
        batch = Batch(queue, [body for _, _, body in kept], _noop_settle)
        batch._settle = functools.partial(self._settle, batch, held)
        batch._reject = functools.partial(self._reject, batch, held)
        return batch

    def _get(self, channel: _Channel, queue: str, count: int) -> list[tuple[Any, Any, bytes]]:
        """Up to ``count`` messages, unacknowledged: one basic_get, or a consumer with that prefetch."""
        if count == 1:
            method, properties, body = channel.channel.basic_get(queue)
            return [] if method is None else [(method, properties, body)]
        found: list[tuple[Any, Any, bytes]] = []
        while len(found) < count:
            chunk = min(count - len(found), _PREFETCH_MAX)
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

    def _current(self, held: _Held) -> _Channel | None:
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


def _noop_settle(ok: bool) -> None:
    pass


def _collect(into: list[tuple[Any, Any, bytes]], _channel: Any, method: Any, properties: Any, body: bytes) -> None:
    into.append((method, properties, body))


class RabbitMQConsumer:
    """One queue consumed continuously (``basic_qos`` + ``basic_consume``) by its own thread and
    connection. Each message goes to ``callback`` as a one-message Batch, on this thread; settling
    the Batch (from any thread) is carried out here through ``add_callback_threadsafe``."""

    def __init__(self, stream: RabbitMQDatastream, queue: str, callback: Callable[[Batch], None],
                 prefetch: int) -> None:
        self.queue = queue
        self._stream = stream
        self._callback = callback
        self._prefetch = max(1, min(int(prefetch), _PREFETCH_MAX))
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connection: Any = None  # while a session runs; other threads only add callbacks to it
        self._session = 0
        self._status, self._error, self._sessions = "connecting", None, 0
        self._unapplied: dict[tuple[int, int], tuple[Any, bytes]] = {}  # acks handed over, not yet sent
        self._handed: set[tuple[int, int]] = set()  # (session, tag) given to the callback, not settled
        self._channel: Any = None  # consumer thread only
        self._outstanding: set[int] = set()  # consumer thread only
        self._thread = threading.Thread(target=self._run, name=f"experimenthub-consume-{queue}", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def describe(self) -> dict[str, Any]:
        return {"queue": self.queue, "status": self._status, "error": self._error,
                "reconnects": max(0, self._sessions - 1)}

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(_noop)
            except Exception:
                pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stopping.is_set():
                try:
                    self._consume()
                    attempt = 0
                except Exception as exc:  # pika and socket errors: reconnect with backoff
                    reason = describe(exc)
                    with self._lock:
                        self._status, self._error = "unreachable", reason
                    if not self._stopping.is_set():
                        log.warning("consumer of queue %r: %s; reconnecting", self.queue, reason)
                    self._stopping.wait(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                    attempt += 1
        finally:
            with self._lock:
                self._status = "stopped"
            self._stream._forget(self)

    def _consume(self) -> None:
        connection = pika.BlockingConnection(self._stream._parameters(f"consume {self.queue}"))
        try:
            declare(connection, self.queue)
            self._await_handover(connection)
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self._prefetch)
            with self._lock:
                self._session += 1
                session = self._session
                self._connection, self._channel, self._outstanding = connection, channel, set()
                self._status, self._error = "connected", None
                self._sessions += 1
            tag = channel.basic_consume(self.queue, functools.partial(self._deliver, session))
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=0.2)
            channel.basic_cancel(tag)  # no new deliveries; acks already handed over still go out
            deadline = time.monotonic() + STOP_GRACE
            while self._outstanding and time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.05)
        finally:
            with self._lock:
                self._connection = None
                self._session += 1  # whatever is settled from now on is stale
                lost = list(self._unapplied.values())
                self._unapplied.clear()
            for properties, body in lost:
                self._stream._consumed.remember(properties, body, ack_lost=True)
            try:
                if connection.is_open:
                    connection.close()  # unsettled messages go back to the queue
            except Exception:
                pass

    def _await_handover(self, connection: Any) -> None:
        """After a reconnect, consume again only once the batches handed out on the lost connection
        are settled: RabbitMQ redelivers them, and a redelivery must not reach the callback while
        its first delivery is still being worked on (its ack then marks it used, and it is skipped)."""
        deadline = time.monotonic() + HANDOVER_WAIT
        while not self._stopping.is_set():
            with self._lock:
                if not self._handed:
                    return
            if time.monotonic() > deadline:
                log.warning("consumer of queue %r: %d batch(es) of a lost connection still unsettled after %.0f s; "
                            "consuming again", self.queue, len(self._handed), HANDOVER_WAIT)
                with self._lock:
                    self._handed.clear()
                return
            connection.process_data_events(time_limit=0.02)  # keeps heartbeats going meanwhile

    def _deliver(self, session: int, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        if self._stream._consumed.used(method.redelivered, properties, body):
            channel.basic_ack(method.delivery_tag)  # used already; its ack was lost with a connection
            log.info("skipped a message of queue %r that was used already", self.queue)
            return
        tag = method.delivery_tag
        self._outstanding.add(tag)
        with self._lock:
            self._handed.add((session, tag))
        batch = Batch(self.queue, [body], _noop_settle)
        batch._settle = functools.partial(self._settle, session, tag, properties, body)
        batch._reject = functools.partial(self._reject, session, tag, properties, body)
        try:
            self._callback(batch)
        except Exception:
            log.exception("consumer callback of queue %r failed; the message goes back", self.queue)
            self._outstanding.discard(tag)
            with self._lock:
                self._handed.discard((session, tag))
            channel.basic_nack(tag, requeue=True)

    def _settle(self, session: int, tag: int, properties: Any, body: bytes, ok: bool) -> None:
        if ok:
            self._stream._consumed.remember(properties, body, ack_lost=False)
        with self._lock:
            self._handed.discard((session, tag))

        def apply() -> None:
            with self._lock:
                self._unapplied.pop((session, tag), None)
                current = self._session == session
            if not current or self._channel is None or not self._channel.is_open:
                if ok:
                    self._stream._consumed.remember(properties, body, ack_lost=True)
                return
            if ok:
                self._channel.basic_ack(tag)
            else:
                self._channel.basic_nack(tag, requeue=True)
            self._outstanding.discard(tag)

        with self._lock:
            connection = self._connection if self._session == session else None
            if connection is not None:
                try:
                    connection.add_callback_threadsafe(apply)
                    if ok:
                        self._unapplied[(session, tag)] = (properties, body)
                    return
                except Exception:
                    pass
        if ok:  # the connection that delivered it is gone: RabbitMQ requeued it
            self._stream._consumed.remember(properties, body, ack_lost=True)

    def _reject(self, session: int, tag: int, properties: Any, body: bytes, index: int, reason: str) -> None:
        stream = self._stream
        stream._call(lambda: stream._publish_dead(self.queue, body, properties, reason),
                     f"move a message of queue {self.queue!r} to {self.queue + DEAD_SUFFIX!r}")
        log.warning("message of queue %r moved to %r: %s", self.queue, self.queue + DEAD_SUFFIX, reason)
        self._settle(session, tag, properties, body, True)
