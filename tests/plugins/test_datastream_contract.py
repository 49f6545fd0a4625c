"""One contract, two datastreams: the in-process queues and RabbitMQ (the real broker).

Whatever the hub relies on is checked here against both: order through ack/nack, next_batch,
purge, depth, dead-lettering with the reason, consume (streaming), health, and publishing from
several threads at once.
"""

from __future__ import annotations

import queue as queue_module
import threading

import pytest
import rabbit
from helpers import never, wait_for

from experimenthub.plugins.memory_stream import MemoryDatastream
from experimenthub.plugins.protocols import Batch, DatastreamPlugin
from experimenthub.plugins.rabbitmq_stream import RabbitMQDatastream


@pytest.fixture(params=["memory", "rabbitmq"])
def stream(request):
    if request.param == "memory":
        implementation = MemoryDatastream()
    else:
        rabbit.connect().close()  # a clear failure when the broker is not running
        implementation = RabbitMQDatastream(rabbit.URL)
    yield implementation
    implementation.close()


@pytest.fixture
def queue(stream):
    name = rabbit.unique("contract")
    yield name
    if isinstance(stream, RabbitMQDatastream):
        rabbit.delete_queues(name, name + ".dead")


def bodies(n: int, prefix: str = "m") -> list[bytes]:
    return [f'[{{"n": {i}, "tag": "{prefix}"}}]'.encode() for i in range(n)]


def test_is_a_datastream_plugin(stream):
    assert isinstance(stream, DatastreamPlugin)


def test_drain_takes_everything_in_order_and_nack_puts_it_back_in_order(stream, queue):
    sent = bodies(5)
    for body in sent:
        stream.publish(queue, body)
    assert stream.depth(queue) == 5
    batch = stream.drain(queue)
    assert batch.queue == queue and batch.bodies == sent
    assert stream.depth(queue) == 0  # taken, not settled: invisible to others
    assert stream.drain(queue) is None
    batch.nack()
    assert stream.depth(queue) == 5
    again = stream.drain(queue)
    assert again.bodies == sent
    again.ack()
    again.ack()  # settling twice is harmless
    assert stream.depth(queue) == 0
    assert stream.drain(queue) is None


def test_drain_takes_what_is_there_now(stream, queue):
    for body in bodies(3):
        stream.publish(queue, body)
    batch = stream.drain(queue)
    stream.publish(queue, b'[{"n": 99}]')  # arrives after: stays for the next one
    assert len(batch.bodies) == 3
    batch.ack()
    assert stream.depth(queue) == 1


def test_next_batch_takes_the_oldest_one(stream, queue):
    sent = bodies(3)
    for body in sent:
        stream.publish(queue, body)
    first = stream.next_batch(queue)
    assert first.bodies == [sent[0]]
    assert stream.depth(queue) == 2
    first.nack()
    assert stream.next_batch(queue).bodies == [sent[0]]  # back at the head
    second = stream.next_batch(queue)
    assert second.bodies == [sent[1]]
    second.ack()


def test_purge_and_depth(stream, queue):
    missing = rabbit.unique("never-declared")
    assert stream.depth(missing) == 0 and stream.purge(missing) == 0
    assert stream.next_batch(missing) is None and stream.drain(missing) is None
    for body in bodies(4):
        stream.publish(queue, body)
    held = stream.next_batch(queue)  # unsettled messages are not purged
    assert stream.purge(queue) == 3
    assert stream.depth(queue) == 0
    held.nack()
    assert stream.depth(queue) == 1


def test_reject_dead_letters_with_the_reason_and_the_rest_go_back_in_order(stream, queue):
    sent = bodies(4)
    for body in sent:
        stream.publish(queue, body)
    batch = stream.drain(queue)
    batch.reject(1, "message 2 is not a table")
    batch.reject(1, "twice")  # once only
    assert batch.pending == [0, 2, 3]
    batch.nack()
    assert stream.depth(queue) == 3
    again = stream.drain(queue)
    assert again.bodies == [sent[0], sent[2], sent[3]]
    again.reject(2, "bad columns")
    again.ack()
    assert stream.depth(queue) == 0
    dead = stream.dead_letters(queue)
    assert [(d.body, d.reason) for d in dead] == [(sent[1], "message 2 is not a table"), (sent[3], "bad columns")]
    assert stream.dead_letters(queue) == dead  # reading leaves them there


def test_rejecting_every_message_settles_the_batch(stream, queue):
    stream.publish(queue, b"not json")
    batch = stream.next_batch(queue)
    batch.reject(0, "not JSON")
    assert batch.settled and batch.pending == []
    batch.nack()  # nothing left to requeue
    assert stream.depth(queue) == 0
    with pytest.raises(IndexError):
        Batch(queue, [b"x"], lambda ok: None, _reject=lambda i, r: None).reject(3, "out of range")


def test_health_shape(stream):
    health = stream.health()
    assert health["healthy"] is True
    assert health["details"]["status"] == "connected"
    if isinstance(stream, RabbitMQDatastream):
        assert health["details"]["host"] == "127.0.0.1" and health["details"]["port"] == 5672
        assert health["details"]["error"] is None


def test_publish_from_many_threads(stream, queue):
    threads, per_thread = 4, 40
    errors = []

    def send(t: int) -> None:
        try:
            for body in bodies(per_thread, prefix=f"t{t}"):
                stream.publish(queue, body)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors
    assert stream.depth(queue) == threads * per_thread
    batch = stream.drain(queue)
    assert len(batch.bodies) == threads * per_thread
    for t in range(threads):  # each publisher's messages in its own order
        mine = [body for body in batch.bodies if f'"t{t}"'.encode() in body]
        assert mine == bodies(per_thread, prefix=f"t{t}")
    batch.ack()
    assert stream.depth(queue) == 0


def consume_into(stream, queue, settle, prefetch=1):
    """Consume ``queue``; a worker thread (not the consumer's) settles each batch with ``settle``."""
    inbox: queue_module.Queue[Batch] = queue_module.Queue()
    seen: list[bytes] = []
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                batch = inbox.get(timeout=0.05)
            except queue_module.Empty:
                continue
            seen.append(batch.bodies[0])
            settle(batch)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    consumer = stream.consume(queue, inbox.put, prefetch=prefetch)
    return consumer, seen, stop


def test_consume_delivers_in_order_and_acks_from_another_thread(stream, queue):
    sent = bodies(30)
    consumer, seen, stop = consume_into(stream, queue, Batch.ack)
    try:
        for body in sent:
            stream.publish(queue, body)
        wait_for(lambda: len(seen) == len(sent))
        assert seen == sent
        wait_for(lambda: stream.depth(queue) == 0)
        consumer.stop()
        assert not consumer.running
        stream.publish(queue, b'[{"n": "after"}]')  # nobody consumes any more: it stays, unseen
        never(lambda: len(seen) != len(sent) or stream.depth(queue) != 1, within=1.0,
              what="a stopped consumer took the message")
    finally:
        stop.set()
        consumer.stop()


def test_consume_requeue_keeps_the_order(stream, queue):
    sent = bodies(6)
    nacked = set()

    def settle(batch: Batch) -> None:
        body = batch.bodies[0]
        if body in (sent[1], sent[4]) and body not in nacked:
            nacked.add(body)  # e.g. the experiment was busy: back to the queue, then again
            batch.nack()
        else:
            batch.ack()

    consumer, seen, stop = consume_into(stream, queue, settle)
    try:
        for body in sent:
            stream.publish(queue, body)
        wait_for(lambda: len(seen) == len(sent) + 2)
        assert seen == [sent[0], sent[1], sent[1], sent[2], sent[3], sent[4], sent[4], sent[5]]
        wait_for(lambda: stream.depth(queue) == 0)
    finally:
        stop.set()
        consumer.stop()


def test_consume_reject_dead_letters(stream, queue):
    def settle(batch: Batch) -> None:
        if batch.bodies[0] == b"oops":
            batch.reject(0, "not JSON")
        else:
            batch.ack()

    consumer, seen, stop = consume_into(stream, queue, settle)
    try:
        for body in (b'[{"n": 1}]', b"oops", b'[{"n": 2}]'):
            stream.publish(queue, body)
        wait_for(lambda: len(seen) == 3)
        wait_for(lambda: len(stream.dead_letters(queue)) == 1)
        assert [(d.body, d.reason) for d in stream.dead_letters(queue)] == [(b"oops", "not JSON")]
        wait_for(lambda: stream.depth(queue) == 0)
    finally:
        stop.set()
        consumer.stop()


def test_stopping_a_consumer_puts_unsettled_messages_back(stream, queue):
    consumer, seen, stop = consume_into(stream, queue, lambda batch: None)  # never settles
    try:
        for body in bodies(3):
            stream.publish(queue, body)
        wait_for(lambda: len(seen) == 1)  # prefetch 1: one in hand, the rest wait in the queue
        never(lambda: len(seen) != 1 or stream.depth(queue) != 2, within=0.5,
              what="more than one unsettled message delivered at prefetch 1")
    finally:
        stop.set()
        consumer.stop()
    wait_for(lambda: stream.depth(queue) == 3)  # what the stopped consumer held went back, in order
    batch = stream.drain(queue)
    assert batch.bodies == bodies(3)
    batch.ack()
