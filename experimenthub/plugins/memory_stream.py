"""The embedded datastream: in-process queues with the same ack/nack contract as RabbitMQ.

Messages taken but not settled stay invisible to other consumers; ``nack`` puts them back at the
head of the queue in their original order, as a broker requeue would.
"""

from __future__ import annotations

import collections
import threading

from .protocols import Batch, Health


class MemoryDatastream:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, collections.deque[bytes]] = collections.defaultdict(collections.deque)
        self._unacked: dict[str, int] = collections.defaultdict(int)

    def health(self) -> Health:
        with self._lock:
            queues = sum(1 for q in self._queues.values() if q)
        return {"healthy": True, "details": {"status": "connected", "backend": "in-process", "queues": queues}}

    def publish(self, queue: str, body: bytes) -> None:
        with self._lock:
            self._queues[queue].append(bytes(body))

    def _take(self, queue: str, limit: int | None) -> Batch | None:
        with self._lock:
            pending = self._queues.get(queue)
            if not pending:
                return None
            count = len(pending) if limit is None else min(limit, len(pending))
            bodies = [pending.popleft() for _ in range(count)]
            self._unacked[queue] += count
        return Batch(queue, bodies, lambda ok: self._settle(queue, bodies, ok))

    def _settle(self, queue: str, bodies: list[bytes], ok: bool) -> None:
        with self._lock:
            self._unacked[queue] -= len(bodies)
            if not ok:
                self._queues[queue].extendleft(reversed(bodies))

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

    def close(self) -> None:
        pass
