"""The embedded datastream: in-process queues with the same ack/nack contract as RabbitMQ.

Messages taken but not settled stay invisible to other consumers; ``nack`` puts them back at the
head of the queue in their original order, as a broker requeue would. ``reject`` moves a message
to the queue's dead-letter list (``dead_letters(queue)``) with its reason. ``consume`` runs a
thread per consumer that waits on a condition for new messages; stopping it puts what it delivered
and nobody settled back in the queue, as a closed broker connection does.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from ..errors import DatastreamError
from .protocols import Batch, DeadLetter, Health

log = logging.getLogger(__name__)


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

    def _take_locked(self, queue: str, limit: int | None, owner: MemoryConsumer | None = None) -> Batch | None:
        pending = self._queues.get(queue)
        if not pending:
            return None
        count = len(pending) if limit is None else min(limit, len(pending))
        bodies = [pending.popleft() for _ in range(count)]
        self._unacked[queue] += count
        batch = Batch(queue, bodies, lambda ok: None)
        batch._settle = lambda ok: self._settle(batch, ok, owner)
        batch._reject = lambda index, reason: self._reject(batch, index, reason, owner)
        return batch

    def _settle(self, batch: Batch, ok: bool, owner: MemoryConsumer | None) -> None:
        remaining = [body for i, body in enumerate(batch.bodies) if i not in batch.rejected]
        with self._lock:
            if owner is not None and owner._outstanding.pop(id(batch), None) is None:
                return  # its consumer stopped and put it back already (a closed connection's requeue)
            self._unacked[batch.queue] -= len(remaining)
            if not ok:
                self._queues[batch.queue].extendleft(reversed(remaining))
            self._changed.notify_all()

    def _reject(self, batch: Batch, index: int, reason: str, owner: MemoryConsumer | None) -> None:
        with self._lock:
            if owner is not None and id(batch) not in owner._outstanding:
                raise DatastreamError(f"Cannot dead-letter a message of queue {batch.queue!r}: its consumer "
                                      f"stopped and put it back in the queue")
            self._unacked[batch.queue] -= 1
            self._dead[batch.queue].append(DeadLetter(batch.bodies[index], reason))
            if owner is not None and len(batch.rejected) + 1 == len(batch.bodies):
                owner._outstanding.pop(id(batch), None)  # its last message: the batch is settled
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
        consumer = MemoryConsumer(self, queue, callback, max(1, int(prefetch)))
        with self._lock:
            self._consumers.add(consumer)
        consumer._thread.start()
        return consumer

    def close(self) -> None:
        with self._lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            consumer.stop()


class MemoryConsumer:
    """Delivers the messages of one in-process queue, at most ``prefetch`` unsettled at a time."""

    def __init__(self, stream: MemoryDatastream, queue: str, callback: Callable[[Batch], None],
                 prefetch: int) -> None:
        self.queue = queue
        self._stream = stream
        self._callback = callback
        self._prefetch = prefetch
        self._outstanding: dict[int, Batch] = {}  # delivered, unsettled batches by id
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"experimenthub-consume-{queue}", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def _run(self) -> None:
        stream = self._stream
        while True:
            with stream._lock:
                while not self._stopping and (len(self._outstanding) >= self._prefetch
                                              or not stream._queues.get(self.queue)):
                    stream._changed.wait(0.5)
                if self._stopping:
                    return
                batch = stream._take_locked(self.queue, 1, owner=self)
                assert batch is not None
                self._outstanding[id(batch)] = batch
            try:
                self._callback(batch)
            except Exception:
                log.exception("consumer callback of queue %r failed; the message goes back", self.queue)
                batch.nack()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop delivering; what was delivered and not settled goes back to the head of the queue
        in order (settling it later does nothing), as when a broker connection closes."""
        stream = self._stream
        with stream._lock:
            self._stopping = True
            stream._consumers.discard(self)
            held = list(self._outstanding.values())
            self._outstanding.clear()
            back = [body for batch in held for i, body in enumerate(batch.bodies) if i not in batch.rejected]
            stream._unacked[self.queue] -= len(back)
            stream._queues[self.queue].extendleft(reversed(back))
            stream._changed.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
