"""The embedded datastream: in-process queues with the same ack/nack contract as RabbitMQ.

Messages taken but not settled stay invisible to other consumers; ``nack`` puts them back at the
head of the queue in their original order, as a broker requeue would. ``reject`` moves a message
to the queue's dead-letter list (``dead_letters(queue)``) with its reason. ``consume`` runs a
thread per consumer that waits on a condition for new messages; stopping it puts what it delivered
and nobody settled back in the queue, as a closed broker connection does. A consumer is given a
:class:`MemoryConsumerContext` (the stream's condition and two operations on its queues), never
the stream itself.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Callable

from ..errors import DatastreamError
from .protocols import Batch, DeadLetter, Health

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MemoryConsumerContext:
    """What a :class:`MemoryConsumer` gets from the stream that starts it. ``take`` and
    ``give_back`` must be called holding ``changed`` (the stream's lock)."""

    changed: threading.Condition
    """The stream's lock, notified whenever a queue or a settlement changes."""
    take: Callable[[str, dict[int, Batch]], Batch | None]
    """``(queue, held)``: the oldest message of ``queue`` as a one-message Batch, or None when the
    queue is empty. Settling it removes it from ``held`` (the consumer's unsettled batches by id);
    once it is no longer there, settling it does nothing."""
    give_back: Callable[[MemoryConsumer, list[bytes]], None]
    """The consumer stops: the stream forgets it and puts ``bodies`` back at the head of its queue."""


class MemoryDatastream:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queues: dict[str, collections.deque[bytes]] = collections.defaultdict(collections.deque)
        self._unacked: dict[str, int] = collections.defaultdict(int)
        self._dead: dict[str, list[DeadLetter]] = collections.defaultdict(list)
        self._consumers: set[MemoryConsumer] = set()

    def health(self) -> Health:
        with self._lock:
            queues = sum(1 for q in self._queues.values() if q)
            consumers = len(self._consumers)
        return {"healthy": True, "details": {"status": "connected", "backend": "in-process", "queues": queues,
                                             "consumers": consumers}}

    def publish(self, queue: str, body: bytes) -> None:
        with self._lock:
            self._queues[queue].append(bytes(body))
            self._changed.notify_all()

    def _take(self, queue: str, limit: int | None) -> Batch | None:
        with self._lock:
            return self._take_locked(queue, limit)

    def _take_locked(self, queue: str, limit: int | None, held: dict[int, Batch] | None = None) -> Batch | None:
        """Up to ``limit`` messages of ``queue`` (all when None), under the lock. ``held``: the
        unsettled batches of the consumer they are for, which settling updates."""
        pending = self._queues.get(queue)
        if not pending:
            return None
        count = len(pending) if limit is None else min(limit, len(pending))
        bodies = [pending.popleft() for _ in range(count)]
        self._unacked[queue] += count

        def settle(ok: bool) -> None:
            self._settle(batch, ok, held)

        def reject(index: int, reason: str) -> None:
            self._reject(batch, index, reason, held)

        batch = Batch(queue, bodies, settle, _reject=reject)
        return batch

    def _take_one(self, queue: str, held: dict[int, Batch]) -> Batch | None:
        return self._take_locked(queue, 1, held)

    def _settle(self, batch: Batch, ok: bool, held: dict[int, Batch] | None) -> None:
        remaining = [body for i, body in enumerate(batch.bodies) if i not in batch.rejected]
        with self._lock:
            if held is not None and held.pop(id(batch), None) is None:
                return  # its consumer stopped and put it back already (a closed connection's requeue)
            self._unacked[batch.queue] -= len(remaining)
            if not ok:
                self._queues[batch.queue].extendleft(reversed(remaining))
            self._changed.notify_all()

    def _reject(self, batch: Batch, index: int, reason: str, held: dict[int, Batch] | None) -> None:
        with self._lock:
            if held is not None and id(batch) not in held:
                raise DatastreamError(f"Cannot dead-letter a message of queue {batch.queue!r}: its consumer "
                                      f"stopped and put it back in the queue")
            self._unacked[batch.queue] -= 1
            self._dead[batch.queue].append(DeadLetter(batch.bodies[index], reason))
            if held is not None and len(batch.rejected) + 1 == len(batch.bodies):
                held.pop(id(batch), None)  # its last message: the batch is settled
            self._changed.notify_all()

    def drain(self, queue: str) -> Batch | None:
        return self._take(queue, None)

    def next_batch(self, queue: str) -> Batch | None:
        return self._take(queue, 1)

    def purge(self, queue: str) -> int:
        with self._lock:
            pending = self._queues.pop(queue, None)
        return len(pending) if pending else 0

    def depth(self, queue: str) -> int:
        with self._lock:
            return len(self._queues.get(queue, ()))

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        with self._lock:
            return list(self._dead.get(queue, ()))

    def consume(self, queue: str, callback: Callable[[Batch], None], prefetch: int = 1) -> MemoryConsumer:
        context = MemoryConsumerContext(changed=self._changed, take=self._take_one, give_back=self._give_back)
        consumer = MemoryConsumer(context, queue, callback, max(1, int(prefetch)))
        with self._lock:
            self._consumers.add(consumer)
        consumer.start()
        return consumer

    def _give_back(self, consumer: MemoryConsumer, bodies: list[bytes]) -> None:
        """Under the lock: a stopping consumer's unsettled messages go back to the head of its queue."""
        self._consumers.discard(consumer)
        self._unacked[consumer.queue] -= len(bodies)
        self._queues[consumer.queue].extendleft(reversed(bodies))
        self._changed.notify_all()

    def close(self) -> None:
        with self._lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            consumer.stop()


class MemoryConsumer:
    """Delivers the messages of one in-process queue, at most ``prefetch`` unsettled at a time."""

    def __init__(self, context: MemoryConsumerContext, queue: str, callback: Callable[[Batch], None],
                 prefetch: int) -> None:
        self.queue = queue
        self._context = context
        self._callback = callback
        self._prefetch = prefetch
        self._outstanding: dict[int, Batch] = {}  # delivered, unsettled batches by id
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"experimenthub-consume-{queue}", daemon=True)

    def start(self) -> None:
        """Start delivering (on its own thread); once only."""
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def _run(self) -> None:
        context = self._context
        while True:
            with context.changed:
                while True:  # until there is room for one more and a message to fill it
                    if self._stopping:
                        return
                    if len(self._outstanding) < self._prefetch:
                        batch = context.take(self.queue, self._outstanding)
                        if batch is not None:
                            break
                    context.changed.wait(0.5)
                self._outstanding[id(batch)] = batch
            try:
                self._callback(batch)
            except Exception:
                log.exception("consumer callback of queue %r failed; the message goes back", self.queue)
                batch.nack()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop delivering; what was delivered and not settled goes back to the head of the queue
        in order (settling it later does nothing), as when a broker connection closes."""
        with self._context.changed:
            self._stopping = True
            held = list(self._outstanding.values())
            self._outstanding.clear()
            back = [body for batch in held for i, body in enumerate(batch.bodies) if i not in batch.rejected]
            self._context.give_back(self, back)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
