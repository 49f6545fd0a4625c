"""The memory that keeps a redelivered message from being used twice.

A lost connection is reopened with backoff, and RabbitMQ puts back every message the lost
connection held unacknowledged; a Batch taken on it is stale and settling it does nothing on the
new connection (its delivery tags would name other messages). So that a redelivered message is not
used twice, the stream remembers the ``message_id`` of every message it consumed (the hub's
publisher sets one; so should others) and, for messages without one, the body digest of those
whose ack was known to be lost; such a message is acknowledged and skipped when it comes again.
The datastream also asks this memory, once connected again, which messages at the head of a queue
were used, to acknowledge them at once rather than leave them for another process to use again.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from typing import Any


def _digest(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


class Consumed:
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
