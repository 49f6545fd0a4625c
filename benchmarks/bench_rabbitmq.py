"""Ingest throughput from RabbitMQ: the hub's datastream against plain pika consuming the same
messages from the same broker in the same run (repeats interleaved, medians).

    .venv/bin/python benchmarks/bench_rabbitmq.py [--repeats 5] [--messages 2000]

Rows:
* training from a queue: ``drain`` + ``ack`` of every message present (``--messages`` messages
  of 20 prophet_daily rows), against plain pika ``basic_qos(n)`` + ``basic_consume`` until n
  messages arrived + one ``basic_ack(multiple=True)``. Then the same drain plus the hub's decoding
  and validation into one training frame (what ``create_experiment`` does before the fit).
* streaming predict: one-row messages through ``consume`` with prefetch 1 and acks sent from a
  worker thread (the watcher's transport), against plain pika with the same worker-thread +
  ``add_callback_threadsafe`` pattern (what pika prescribes when the work is long, pika#418) and
  against plain pika acking inside its callback (one thread, no hand-off: the fastest possible,
  fine only for trivial work); then the watcher itself with a no-op predict (decoding included)
  against plain pika decoding in its callback. Finally ``hub.watch`` end to end with Prophet's
  predict (50 uncertainty samples), where the model, not the transport, is the cost.

Target (issue 4): the transport part at >= 0.7 of plain pika.
"""

from __future__ import annotations

import argparse
import json
import queue as queue_module
import statistics
import sys
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pika
from _common import median, table

URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ROWS_PER_DRAIN_MESSAGE = 20


def connect() -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(URL))


def fill(queue: str, bodies: list[bytes]) -> None:
    """Publish with plain pika (persistent, a message_id each, as the hub's publisher) and wait for them."""
    connection = connect()
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    for body in bodies:
        channel.basic_publish("", queue, body, pika.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id=uuid.uuid4().hex))
    while channel.queue_declare(queue, passive=True).method.message_count < len(bodies):
        connection.process_data_events(time_limit=0.01)
    connection.close()


def delete(*queues: str) -> None:
    connection = connect()
    for queue in queues:
        connection.channel().queue_delete(queue)
    connection.close()


# -- training from a queue ------------------------------------------------------------------------------
def _take(connection, channel, queue: str, count: int) -> list[tuple[int, bytes]]:
    """Plain pika: consume ``count`` messages with a prefetch of ``count`` (not acked yet)."""
    got: list[tuple[int, bytes]] = []
    channel.basic_qos(prefetch_count=count)
    tag = channel.basic_consume(queue, lambda ch, method, props, body: got.append((method.delivery_tag, body)))
    while len(got) < count:
        connection.process_data_events(time_limit=1)
    channel.basic_cancel(tag)
    return got


def plain_drain(queue: str, count: int) -> float:
    connection = connect()
    channel = connection.channel()
    start = time.perf_counter()
    got = _take(connection, channel, queue, count)
    channel.basic_ack(got[-1][0], multiple=True)
    channel.basic_qos(prefetch_count=0)  # a round trip: the ack was processed
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def plain_drain_to_frame(queue: str, count: int, impl) -> float:
    """The same, then the decoding a plain consumer would do (json + one DataFrame) and the same
    validation as the hub (the experiment type's, e.g. parsing the timestamps)."""
    import pandas as pd

    connection = connect()
    channel = connection.channel()
    start = time.perf_counter()
    got = _take(connection, channel, queue, count)
    records: list[dict] = []
    for _, body in got:
        records.extend(json.loads(body))
    frame = impl.validate_data(pd.DataFrame.from_records(records))
    channel.basic_ack(got[-1][0], multiple=True)
    channel.basic_qos(prefetch_count=0)
    elapsed = time.perf_counter() - start
    connection.close()
    assert len(frame) == count * ROWS_PER_DRAIN_MESSAGE
    return elapsed


def hub_drain(stream, queue: str, count: int) -> float:
    start = time.perf_counter()
    batch = stream.drain(queue)
    batch.ack()
    elapsed = time.perf_counter() - start
    assert len(batch.bodies) == count, len(batch.bodies)
    return elapsed


def hub_drain_to_frame(hub, impl, queue: str, count: int) -> float:
    from experimenthub import queued

    start = time.perf_counter()
    batch = hub.datastream.drain(queue)
    frame = queued.training_frame(impl, batch)  # what create_experiment does before the fit
    batch.ack()
    elapsed = time.perf_counter() - start
    assert len(frame) == count * ROWS_PER_DRAIN_MESSAGE
    return elapsed


# -- streaming ------------------------------------------------------------------------------------------
def plain_stream(queue: str, count: int, decode: bool = False) -> float:
    import pandas as pd

    connection = connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    seen = [0]

    def on_message(ch, method, props, body):
        if decode:  # what any consumer of JSON tables does with a message
            pd.DataFrame.from_records(json.loads(body))
        seen[0] += 1
        ch.basic_ack(method.delivery_tag)

    start = time.perf_counter()
    channel.basic_consume(queue, on_message)
    while seen[0] < count:
        connection.process_data_events(time_limit=1)
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def plain_stream_worker(queue: str, count: int) -> float:
    """The pattern PITFALLS recommends: the callback hands the message to a worker thread, which
    acks through add_callback_threadsafe on the connection's thread."""
    connection = connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    inbox: queue_module.Queue = queue_module.Queue()
    seen = [0]

    def work():
        for _ in range(count):
            tag = inbox.get()
            connection.add_callback_threadsafe(lambda t=tag: channel.basic_ack(t))
            seen[0] += 1

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    start = time.perf_counter()
    channel.basic_consume(queue, lambda ch, method, props, body: inbox.put(method.delivery_tag))
    while seen[0] < count:
        connection.process_data_events(time_limit=0.05)
    connection.process_data_events(time_limit=0)
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def hub_consume(stream, queue: str, count: int) -> float:
    inbox: queue_module.Queue = queue_module.Queue()
    done = threading.Event()

    def work():
        for _ in range(count):
            inbox.get().ack()
        done.set()

    threading.Thread(target=work, daemon=True).start()
    start = time.perf_counter()
    consumer = stream.consume(queue, inbox.put, prefetch=1)
    done.wait(300)
    elapsed = time.perf_counter() - start
    consumer.stop()
    return elapsed


def hub_watcher_noop(stream, queue: str, count: int) -> float:
    from experimenthub.streaming import Watcher

    seen = [0]
    finished = threading.Event()

    def predict(name, frame):
        seen[0] += 1
        if seen[0] == count:
            finished.set()

    stub = types.SimpleNamespace(datastream=stream, predict=predict)
    watcher = Watcher(stub, queue)
    start = time.perf_counter()
    watcher.start()
    finished.wait(300)
    elapsed = time.perf_counter() - start
    watcher.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--predict-messages", type=int, default=200)
    args = parser.parse_args()
    import logging

    logging.getLogger("cmdstanpy").disabled = True
    from experimenthub import ExperimentHub, datasets
    from experimenthub.tables import to_records

    daily = datasets.load("prophet_daily")
    n = args.messages
    drain_bodies = [json.dumps(to_records(daily.iloc[(i * ROWS_PER_DRAIN_MESSAGE) % 480:][:ROWS_PER_DRAIN_MESSAGE]))
                    .encode() for i in range(n)]
    stream_bodies = [json.dumps(to_records(daily.iloc[i % 510:][:1])).encode() for i in range(n)]
    timings: dict[str, list[float]] = {}

    def run(label, bodies, measure):
        queue = f"bench-{uuid.uuid4().hex[:10]}"
        fill(queue, bodies)
        try:
            timings.setdefault(label, []).append(measure(queue))
        finally:
            delete(queue, queue + ".dead")

    config = {"setup": {"target": "y", "ds": "ds"},
              "create_model": {"model_type": "Prophet", "params": {"uncertainty_samples": 50}}}
    with tempfile.TemporaryDirectory() as home, ExperimentHub(home=home, rabbitmq_url=URL) as hub:
        stream = hub.datastream
        impl = hub._types.get("time_series")(config)
        for _ in range(args.repeats):  # interleaved, so that machine noise hits every row alike
            run("drain plain", drain_bodies, lambda q: plain_drain(q, n))
            run("drain hub", drain_bodies, lambda q: hub_drain(stream, q, n))
            run("drain plain frame", drain_bodies, lambda q: plain_drain_to_frame(q, n, impl))
            run("drain hub frame", drain_bodies, lambda q: hub_drain_to_frame(hub, impl, q, n))
            run("stream plain", stream_bodies, lambda q: plain_stream(q, n))
            run("stream plain decode", stream_bodies, lambda q: plain_stream(q, n, decode=True))
            run("stream plain worker", stream_bodies, lambda q: plain_stream_worker(q, n))
            run("stream hub consume", stream_bodies, lambda q: hub_consume(stream, q, n))
            run("stream hub watcher", stream_bodies, lambda q: hub_watcher_noop(stream, q, n))

        # end to end: hub.watch with Prophet's predict per message
        name = f"bench-watch-{uuid.uuid4().hex[:8]}"
        hub.create_experiment(name, "time_series", config, data=daily.iloc[:400])
        hub.wait(name, timeout=300)
        m = args.predict_messages
        fill(name, stream_bodies[:m])
        start = time.perf_counter()
        hub.watch(name)
        while hub.predictions(name) is None or len(hub.predictions(name)) < m:
            time.sleep(0.01)
        watch_elapsed = time.perf_counter() - start
        hub.unwatch(name)
        delete(name, name + ".dead")

    def rate(label: str) -> float:
        return n / median(timings[label])

    def row(what: str, plain: str, ours: str, rows_per_message: int = 1) -> list[object]:
        return [what, rate(plain), rate(ours), rate(ours) * rows_per_message,
                median(timings[plain]) / median(timings[ours])]

    per = ROWS_PER_DRAIN_MESSAGE
    rows = [
        row("training drain, transport: drain() + Batch.ack()", "drain plain", "drain hub", per),
        row("training drain into the validated training frame", "drain plain frame", "drain hub frame", per),
        row("streaming transport: consume(prefetch 1), worker acks, vs plain pika same pattern",
            "stream plain worker", "stream hub consume"),
        row("  the same vs plain pika acking inside its callback (no worker)", "stream plain",
            "stream hub consume"),
        row("streaming with decoding: the watcher, no-op predict, vs plain callback + decode",
            "stream plain decode", "stream hub watcher"),
        ["streaming end to end: hub.watch, Prophet predict", "", m / watch_elapsed, m / watch_elapsed, ""],
    ]
    print(f"{n} messages per run ({per} rows each for the drain, 1 row each for streaming); median of "
          f"{args.repeats} interleaved runs; ratio = plain pika time / hub time (>= 0.7 is the target)")
    print(table(["path", "plain pika msg/s", "hub msg/s", "hub rows/s", "ratio"], rows))
    print()
    print(table(["bounded wait (issue 4: within 2 s)", "median s", "max s"], latencies(args.repeats)))


def latencies(repeats: int) -> list[list[object]]:
    """How long the calls that must never hang take: health with the broker unreachable, an
    operation refused while it is down, and unwatch."""
    from _common import free_port

    from experimenthub import DatastreamError, ExperimentHub, datasets

    down, refused, unwatch = [], [], []
    with tempfile.TemporaryDirectory() as home:
        url = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"  # nothing listens there
        with ExperimentHub(home=home, rabbitmq_url=url, warm_up=False) as hub:
            for _ in range(repeats):
                start = time.perf_counter()
                hub.datastream.health()
                down.append(time.perf_counter() - start)
                start = time.perf_counter()
                try:
                    hub.publish("q", [{"x": 1}])
                except DatastreamError:
                    pass
                refused.append(time.perf_counter() - start)
        with ExperimentHub(home=home + "/watch", rabbitmq_url=URL) as hub:
            hub.create_experiment("w", "time_series", {"setup": {"target": "y"}},
                                  data=datasets.load("prophet_daily"))
            hub.wait("w", timeout=300)
            for _ in range(repeats):
                hub.watch("w")
                start = time.perf_counter()
                hub.unwatch("w")
                unwatch.append(time.perf_counter() - start)
            delete("w", "w.dead")
    return [[label, statistics.median(v), max(v)] for label, v in (
        ("health() with the broker unreachable", down), ("publish refused while it is down", refused),
        ("unwatch()", unwatch))]


if __name__ == "__main__":
    main()
