"""The streaming consumer of the RabbitMQ datastream (``RabbitMQDatastream.consume``).

Each ``consume`` runs its own thread with its own connection, ``basic_qos`` and
``basic_consume``; its Batches are settled through ``add_callback_threadsafe`` on that
connection, so the work itself happens elsewhere and heartbeats keep flowing (pika#418).

A lost connection is reopened with backoff. RabbitMQ redelivers the messages it held; the
consumer starts again only once the Batches handed out on the lost connection are settled (so a
redelivery never reaches the callback while its first delivery is still being worked on), and a
redelivered message that was used already is acknowledged and skipped (see :mod:`.redelivery`).

A consumer knows nothing of the datastream that starts it: it is given a
:class:`ConsumerContext` with the shared memory of used messages and the few things of the
stream it needs (connection parameters, dead-lettering on the stream's I/O thread, being
forgotten when it stops).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pika

from ..protocols import Batch
from .amqp import BACKOFF, DEAD_SUFFIX, HANDOVER_WAIT, PREFETCH_MAX, STOP_GRACE, declare, describe, noop
from .redelivery import Consumed

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ConsumerContext:
    """What a :class:`RabbitMQConsumer` gets from the datastream that starts it (one per stream,
    shared by its consumers)."""

    consumed: Consumed
    """The stream's memory of used messages: a consumer's redeliveries are skipped by it too."""
    parameters: Callable[[str], pika.URLParameters]
    """Connection parameters for a connection of the given role (its name carries the stream's id)."""
    dead_letter: Callable[[str, bytes, Any, str], None]
    """``(queue, body, properties, reason)``: publish a copy to ``<queue>.dead`` (confirmed), on the
    stream's I/O thread; raises DatastreamError when it cannot."""
    forget: Callable[[RabbitMQConsumer], None]
    """The consumer's thread ends: the stream no longer counts it (health, close)."""
    recheck: Callable[[str], None]
    """Used messages of this queue may be back in it (an ack lost with a connection, or forgotten
    by a broker that crashed): the stream acknowledges the copies RabbitMQ put back at the head of
    the queue once it is connected. A consumer asks for it when its thread ends, not while it
    consumes: a live consumer skips such copies itself, and a recheck taking messages from the
    head of the queue meanwhile would race it for them (and change their order)."""


class RabbitMQConsumer:
    """One queue consumed continuously (``basic_qos`` + ``basic_consume``) by its own thread and
    connection. Each message goes to ``callback`` as a one-message Batch, on this thread; settling
    the Batch (from any thread) is carried out here through ``add_callback_threadsafe``."""

    def __init__(self, context: ConsumerContext, queue: str, callback: Callable[[Batch], None],
                 prefetch: int) -> None:
        self.queue = queue
        self._context = context
        self._callback = callback
        self._prefetch = max(1, min(int(prefetch), PREFETCH_MAX))
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connection: Any = None  # while a session runs; other threads only add callbacks to it
        self._session = 0
        self._status, self._sessions = "connecting", 0
        self._error: str | None = None
        self._unapplied: dict[tuple[int, int], tuple[Any, bytes]] = {}  # acks handed over, not yet sent
        self._handed: set[tuple[int, int]] = set()  # (session, tag) given to the callback, not settled
        self._channel: Any = None  # consumer thread only
        self._outstanding: set[int] = set()  # consumer thread only
        self._acked = False  # consumer thread only: an ack went out in this session
        self._owes_recheck = False  # used messages of this queue may be back in it: recheck when ending
        self._thread = threading.Thread(target=self._run, name=f"experimenthub-consume-{queue}", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def start(self) -> None:
        """Start consuming (on its own thread); once only."""
        self._thread.start()

    def describe(self) -> dict[str, Any]:
        return {"queue": self.queue, "status": self._status, "error": self._error,
                "reconnects": max(0, self._sessions - 1)}

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(noop)
            except Exception:
                pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the consumer thread ---------------------------------------------------------------------------
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
            self._context.forget(self)
            with self._lock:
                owed = self._owes_recheck
            if owed:
                self._context.recheck(self.queue)  # no one skips the copies once this consumer is gone

    def recheck_when_stopped(self) -> None:
        """Any thread: used messages of this queue may be back in it (e.g. acks a drain on the
        stream's I/O connection lost): once this consumer ends, the stream acknowledges them."""
        with self._lock:
            self._owes_recheck = True

    def _consume(self) -> None:
        connection = pika.BlockingConnection(self._context.parameters(f"consume {self.queue}"))
        self._acked, ended = False, False
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
            ended = True
        finally:
            with self._lock:
                self._connection = None
                self._session += 1  # whatever is settled from now on is stale
                lost = list(self._unapplied.values())
                self._unapplied.clear()
            for properties, body in lost:
                self._ack_lost(properties, body)
            if not ended and self._acked:
                # a broker that crashed forgets the acks it had not written to disk yet: the
                # messages come back, and if this consumer is stopped by then, no one skips them
                self.recheck_when_stopped()
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
        if self._context.consumed.used(method.redelivered, properties, body):
            channel.basic_ack(method.delivery_tag)  # used already; its ack was lost with a connection
            self._acked = True
            log.info("skipped a message of queue %r that was used already", self.queue)
            return
        tag = method.delivery_tag
        self._outstanding.add(tag)
        with self._lock:
            self._handed.add((session, tag))
        batch = Batch(self.queue, [body], functools.partial(self._settle, session, tag, properties, body),
                      _reject=functools.partial(self._reject, session, tag, properties, body))
        try:
            self._callback(batch)
        except Exception:
            log.exception("consumer callback of queue %r failed; the message goes back", self.queue)
            self._outstanding.discard(tag)
            with self._lock:
                self._handed.discard((session, tag))
            channel.basic_nack(tag, requeue=True)

    # -- settling a Batch (any thread; the work goes to the consumer thread) ----------------------------
    def _settle(self, session: int, tag: int, properties: Any, body: bytes, ok: bool) -> None:
        if ok:
            self._context.consumed.remember(properties, body, ack_lost=False)
        with self._lock:
            self._handed.discard((session, tag))

        def apply() -> None:
            with self._lock:
                self._unapplied.pop((session, tag), None)
                current = self._session == session
            if not current or self._channel is None or not self._channel.is_open:
                if ok:
                    self._ack_lost(properties, body)
                return
            if ok:
                self._channel.basic_ack(tag)
                self._acked = True
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
            self._ack_lost(properties, body)

    def _ack_lost(self, properties: Any, body: bytes) -> None:
        """A used message went back to the queue unacknowledged: its redelivery is skipped here,
        and the stream acknowledges it again once this consumer ends (it may end before the copy comes)."""
        self._context.consumed.remember(properties, body, ack_lost=True)
        self.recheck_when_stopped()

    def _reject(self, session: int, tag: int, properties: Any, body: bytes, index: int, reason: str) -> None:
        self._context.dead_letter(self.queue, body, properties, reason)
        log.warning("message of queue %r moved to %r: %s", self.queue, self.queue + DEAD_SUFFIX, reason)
        self._settle(session, tag, properties, body, True)
