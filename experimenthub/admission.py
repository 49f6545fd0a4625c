"""Admission control: at most ``capacity`` training jobs run at once, the rest wait in FIFO order.

A job enters as a :class:`Ticket` holding two call-backs: ``start`` (called once a slot is free,
on whichever thread freed it; it must return at once, e.g. by starting a thread) and
``dropped`` (called when the ticket is cancelled before it started). A waiting ticket costs a
list entry: nothing is forked or imported for it. ``release`` gives the slot to the next ticket.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import threading
from collections.abc import Callable


class Ticket:
    """One job's place in the queue."""

    def __init__(self, start: Callable[[], None], dropped: Callable[[], None], number: int) -> None:
        self.on_start = start
        self.on_drop = dropped
        self.number = number  # the order of arrival
        self.state = "new"  # new -> waiting -> running -> released; new or waiting -> dropped

    def forget_callbacks(self) -> None:
        """Called once: what the call-backs hold (a job's data, its queue batch) is not kept with
        the ticket for as long as the experiment keeps its last job."""
        self.on_start = self.on_drop = _nothing


class JobQueue:
    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._lock = threading.Lock()
        self._waiting: collections.deque[Ticket] = collections.deque()
        self._numbers: list[int] = []  # the waiting tickets' numbers, ascending: positions in O(log n)
        self._counter = itertools.count()
        self._running = 0

    @property
    def capacity(self) -> int | None:
        """Jobs that may run at once (None: no limit)."""
        return self._capacity

    def set_capacity(self, capacity: int) -> None:
        """Let ``capacity`` jobs run at once from now on (a cluster grew or shrank): waiting jobs
        start at once when it grew; running ones finish when it shrank."""
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        with self._lock:
            self._capacity = capacity
            ready = self._admit()
        self._start_all(ready)

    def ticket(self, start: Callable[[], None], dropped: Callable[[], None]) -> Ticket:
        """A new ticket, not in the queue yet: hand it to whoever may ``release`` it, then ``enter``
        it (its job may start, and even end, before ``enter`` returns)."""
        with self._lock:
            return Ticket(start, dropped, next(self._counter))

    def enter(self, ticket: Ticket) -> None:
        """Queue a ticket; it starts now if a slot is free. A ticket dropped before it entered stays out."""
        with self._lock:
            if ticket.state != "new":
                return
            ticket.state = "waiting"
            self._waiting.append(ticket)
            self._numbers.append(ticket.number)
            ready = self._admit()
        self._start_all(ready)

    def submit(self, start: Callable[[], None], dropped: Callable[[], None]) -> Ticket:
        """A ticket, queued at once (for a caller that releases it only after ``submit`` returns)."""
        ticket = self.ticket(start, dropped)
        self.enter(ticket)
        return ticket

    def position(self, ticket: Ticket) -> int | None:
        """Jobs ahead of a waiting ticket (0: it starts next); None once it left the queue."""
        with self._lock:
            if ticket.state != "waiting":
                return None
            return bisect.bisect_left(self._numbers, ticket.number)

    def cancel(self, ticket: Ticket) -> bool:
        """Drop a ticket not started yet, queued or not (its ``dropped`` call-back runs); False when
        it had started already or was dropped before."""
        with self._lock:
            if ticket.state not in ("new", "waiting"):
                return False
            if ticket.state == "waiting":
                self._waiting.remove(ticket)
                del self._numbers[bisect.bisect_left(self._numbers, ticket.number)]
            ticket.state = "dropped"
        ticket.on_drop()
        ticket.forget_callbacks()
        return True

    def release(self, ticket: Ticket) -> None:
        """A running ticket's job no longer needs its slot: the next waiting one starts. Idempotent."""
        with self._lock:
            if ticket.state != "running":
                return
            ticket.state = "released"
            self._running -= 1
            ready = self._admit()
        self._start_all(ready)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"running": self._running, "waiting": len(self._waiting)}

    def _admit(self) -> list[Ticket]:
        ready = []
        while self._waiting and (self._capacity is None or self._running < self._capacity):
            ticket = self._waiting.popleft()
            del self._numbers[0]
            ticket.state = "running"
            self._running += 1
            ready.append(ticket)
        return ready

    @staticmethod
    def _start_all(tickets: list[Ticket]) -> None:
        for ticket in tickets:
            ticket.on_start()
            ticket.forget_callbacks()


def _nothing() -> None:
    pass
