"""The I/O thread of the RabbitMQ datastream: it owns the main pika ``BlockingConnection`` and
runs, one after the other, the requests that other threads hand to it.

A pika ``BlockingConnection`` is not thread-safe (pika#1237), so every call of the datastream
(``publish``, ``drain``, ``next_batch``, ``purge``, ``depth``, ``dead_letters``) and every
settlement of a Batch (``ack``, ``nack``, ``reject``) is handed to this thread as a request,
whatever thread makes it; so acks always go out on the connection and channel that delivered the
messages. Between requests the thread services heartbeats (``process_data_events``);
``add_callback_threadsafe`` wakes it for a new request.

Reconnecting: a lost connection is reopened with backoff (0, 0.25, 0.5, 1, 2, 2, ... s). RabbitMQ
puts back every message the lost connection held unacknowledged, so the delivery channels of the
lost connection are forgotten with it: a Batch taken on one is stale and settling it does nothing
on the new connection (see :mod:`.redelivery` for how its messages are not used twice). While
there is no connection, calls fail at once with a DatastreamError that says why.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions as px

from ...errors import DatastreamError
from ..protocols import Batch
from .amqp import BACKOFF, REQUEST_TIMEOUT, connection_parameters, describe, noop

log = logging.getLogger(__name__)

_LOST = (px.AMQPConnectionError, OSError)  # the connection is gone: reconnect


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
class DeliveryChannel:
    """A delivery channel of the I/O connection (one per queue, so that a refusal on one queue
    cannot requeue the messages held from another)."""

    channel: Any
    serial: int
    outstanding: set[int]


class IOThread:
    """The connection half of :class:`~.datastream.RabbitMQDatastream` (its base class): one
    connection, owned by one thread, that runs the requests ``_call`` hands to it.

    Construction never blocks on the broker: the thread connects in the background (a broker that
    is down at start is retried with backoff; calls meanwhile raise DatastreamError). The state
    under "owned by the I/O thread" is touched by that thread only; the status fields are read by
    any thread under ``_state_lock``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.id = uuid.uuid4().hex[:12]
        params = self._parameters("io")  # validates the URL (InvalidConfig)
        self.host, self.port, self.vhost = params.host, params.port, params.virtual_host
        self._requests: collections.deque[_Request] = collections.deque()
        self._wake_event = threading.Event()
        self._state_lock = threading.Lock()
        self._status = "connecting"
        self._error: str | None = None
        self._last_error: str | None = None
        self._connects = 0
        self._outages = 0
        self._rechecks: set[str] = set()  # queues whose head may hold used messages RabbitMQ put back
        self._answered = threading.Event()  # the first connection attempt ended
        self._closing = threading.Event()
        # owned by the I/O thread
        self._connection: Any = None
        self._control: Any = None
        self._channels: dict[str, DeliveryChannel] = {}
        self._declared: set[str] = set()
        self._serials = itertools.count(1)
        self._last_attempt = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"experimenthub-rabbitmq-{self.id}", daemon=True)
        self._thread.start()

    def _parameters(self, role: str) -> pika.URLParameters:
        """Connection names carry the stream's id: ``rabbitmqctl list_connections client_properties``."""
        return connection_parameters(self.url, f"experimenthub {self.id} {role}")

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
                connection.add_callback_threadsafe(noop)
            except Exception:  # closed meanwhile: the loop sees it
                pass

    def _unreachable(self, what: str, reason: str | None = None) -> str:
        return (f"Cannot {what}: RabbitMQ at {self.host}:{self.port} is unreachable ({reason or self._error}). "
                f"Start the broker (e.g. rabbitmq-server -detached) or fix rabbitmq_url / "
                f"EXPERIMENTHUB_RABBITMQ_URL; the hub keeps reconnecting in the background.")

    def _stop_io(self) -> None:
        """End the I/O thread: waiting calls fail, the connection closes (unsettled messages go back)."""
        self._closing.set()
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

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
                self._run_rechecks()
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
        with self._state_lock:  # what was taken from them comes back; what of it was used is acked again
            self._rechecks.update(self._channels)
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

    def _recheck(self, queue: str) -> None:
        """Any thread: messages taken from ``queue`` were used but their ack did not reach the
        broker, so RabbitMQ put them back; once connected, the I/O thread acknowledges them again."""
        with self._state_lock:
            self._rechecks.add(queue)
        self._wake()

    def _run_rechecks(self) -> None:
        while self._connection is not None:
            with self._state_lock:
                if not self._rechecks:
                    return
                queue = self._rechecks.pop()
            try:
                self._reacknowledge(queue)
            except _LOST:
                with self._state_lock:
                    self._rechecks.add(queue)  # on the next connection
                raise
            except Exception as exc:
                if not self._connection.is_open:
                    with self._state_lock:
                        self._rechecks.add(queue)
                    raise px.StreamLostError(describe(exc)) from exc
                log.warning("could not acknowledge again the used messages RabbitMQ put back in queue %r: %s",
                            queue, describe(exc))
                self._repair()

    def _reacknowledge(self, queue: str) -> None:
        """Acknowledge the used messages at the head of ``queue`` (the datastream knows which)."""

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
