"""Hub events: what happened to which experiment, delivered to subscribers.

Subscribers are called on the thread that caused the event (a job thread, the server thread, the
kernel), never while a hub lock is held. A subscriber that raises is logged and kept; it cannot
break the hub or the other subscribers. Callbacks must return quickly: widgets set traits, the
REST layer records, nobody does I/O inside a callback.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

log = logging.getLogger(__name__)

EventKind = Literal[
    "experiment_created",
    "experiment_deleted",
    "state_changed",
    "progress",
    "figures_updated",
    "predictions",
    "tracking",
]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class Event:
    kind: EventKind
    name: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    time: float = dataclasses.field(default_factory=time.time)


Callback = Callable[[Event], None]


class Subscription:
    """Handle returned by :meth:`EventBus.subscribe`; call ``close()`` (or use ``with``) to stop."""

    def __init__(self, bus: EventBus, token: int) -> None:
        self._bus, self._token = bus, token

    def close(self) -> None:
        self._bus.unsubscribe(self._token)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, tuple[Callback, frozenset[str] | None]] = {}
        self._next = 0

    def subscribe(self, callback: Callback, kinds: Iterable[str] | None = None) -> Subscription:
        wanted = None if kinds is None else frozenset(kinds)
        if wanted is not None and not wanted <= set(EVENT_KINDS):
            raise ValueError(f"unknown event kinds {sorted(wanted - set(EVENT_KINDS))}; known: {EVENT_KINDS}")
        with self._lock:
            token = self._next
            self._next += 1
            self._subscribers[token] = (callback, wanted)
        return Subscription(self, token)

    def unsubscribe(self, token: int) -> None:
        """Stop delivering to the subscription ``token`` (what Subscription.close calls)."""
        with self._lock:
            self._subscribers.pop(token, None)

    def publish(self, event: Event) -> None:
        with self._lock:
            targets = list(self._subscribers.values())
        for callback, wanted in targets:
            if wanted is not None and event.kind not in wanted:
                continue
            try:
                callback(event)
            except Exception:  # a broken observer must not break the hub
                log.exception("event subscriber %r failed on %s", callback, event.kind)
