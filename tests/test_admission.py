"""The admission queue on its own: FIFO order under a capacity (which may change), positions, and
tickets dropped in every state (before they entered, while waiting, after they started)."""

from __future__ import annotations

import gc
import weakref

import pytest

from experimenthub.admission import JobQueue


def test_fifo_under_a_capacity_with_positions_and_releases():
    queue, started = JobQueue(capacity=2), []
    tickets = [queue.submit(lambda i=i: started.append(i), lambda: None) for i in range(5)]
    assert started == [0, 1] and [queue.position(t) for t in tickets] == [None, None, 0, 1, 2]
    queue.release(tickets[1])
    queue.release(tickets[1])  # idempotent: one slot freed, not two
    assert started == [0, 1, 2] and queue.counts() == {"running": 2, "waiting": 2}
    assert queue.cancel(tickets[3]) is True and queue.position(tickets[4]) == 0
    queue.release(tickets[0])
    assert started == [0, 1, 2, 4] and queue.cancel(tickets[4]) is False  # started already


def test_a_new_capacity_starts_waiting_jobs_at_once_or_lets_running_ones_finish():
    queue, started = JobQueue(capacity=1), []
    tickets = [queue.submit(lambda i=i: started.append(i), lambda: None) for i in range(5)]
    queue.set_capacity(3)  # the cluster grew: two more start now, in order
    assert started == [0, 1, 2] and queue.capacity == 3 and queue.position(tickets[3]) == 0
    queue.set_capacity(1)  # it shrank: nothing running is stopped, nothing starts until below 1
    queue.release(tickets[0])
    queue.release(tickets[1])
    assert started == [0, 1, 2] and queue.counts() == {"running": 1, "waiting": 2}
    queue.release(tickets[2])
    assert started == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        queue.set_capacity(0)


def test_a_ticket_dropped_before_it_entered_never_starts_and_frees_nothing():
    queue, events = JobQueue(capacity=1), []
    ticket = queue.ticket(lambda: events.append("start"), lambda: events.append("dropped"))
    assert queue.cancel(ticket) is True and queue.cancel(ticket) is False
    queue.enter(ticket)
    assert events == ["dropped"] and queue.counts() == {"running": 0, "waiting": 0}
    other = queue.submit(lambda: events.append("other"), lambda: None)
    assert events[-1] == "other" and queue.position(other) is None


def test_a_ticket_keeps_nothing_its_callbacks_held_once_used():
    class Payload:
        pass

    queue = JobQueue(capacity=1)
    started, dropped = Payload(), Payload()
    kept = [weakref.ref(started), weakref.ref(dropped)]
    first = queue.submit(lambda p=started: None, lambda: None)
    second = queue.submit(lambda: None, lambda p=dropped: None)
    queue.cancel(second)
    del started, dropped
    gc.collect()
    assert [ref() for ref in kept] == [None, None]  # the tickets (still referenced) hold neither
    assert first.state == "running" and second.state == "dropped"
