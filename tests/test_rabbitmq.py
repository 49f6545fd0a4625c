"""The hub on the real RabbitMQ broker: training drains a queue filled by another process, predict
takes the next message, flush empties, streaming predicts every batch in order through connection
losses, outages show in health within 2 s, malformed messages land in the dead-letter queue.

Every test uses queues of its own (uuid names) and deletes them after. Publishing and checking
are done with plain pika (tests/rabbit.py), never through the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import rabbit
from helpers import free_port, never, wait_for

from experimenthub import DataError, DatastreamError, ExperimentHub, datasets
from experimenthub.tables import to_records

CONFIG = {"setup": {"target": "y", "ds": "ds"},
          "create_model": {"model_type": "Prophet", "params": {"uncertainty_samples": 50}}}


@pytest.fixture(scope="module")
def daily():
    return datasets.load("prophet_daily")  # 510 daily rows: ds, y


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    rabbit.connect().close()  # a clear failure when the broker is not running
    with ExperimentHub(home=str(tmp_path_factory.mktemp("rabbit-home")), rabbitmq_url=rabbit.URL) as hub:
        yield hub


@pytest.fixture
def name(hub):
    """A fresh experiment (and queue) name; its queues are deleted after the test."""
    name = rabbit.unique("rmq")
    yield name
    if hub.watching(name):
        hub.unwatch(name)
    rabbit.delete_queues(name, name + ".dead")


def records(frame) -> str:
    return json.dumps(to_records(frame))


def trained(hub, name, data):
    hub.create_experiment(name, "time_series", CONFIG, data=data)
    hub.wait(name, timeout=120)
    return name


def predicted_ds(hub, name) -> list[str]:
    frame = hub.predictions(name)
    return [] if frame is None else [t.strftime("%Y-%m-%d") for t in frame["ds"]]


def marker_day(frame) -> str:
    """The day of a one-row marker batch, as predicted_ds writes it."""
    return frame["ds"].iloc[0].strftime("%Y-%m-%d")


def test_the_hub_uses_rabbitmq_when_a_url_is_set(hub):
    from experimenthub.plugins.rabbitmq_stream import RabbitMQDatastream

    assert isinstance(hub.datastream, RabbitMQDatastream)
    health = hub.health()["datastream"]
    assert health["healthy"] is True
    assert {"status": "connected", "host": "127.0.0.1", "port": 5672}.items() <= health["details"].items()


def test_train_from_a_queue_filled_by_another_process_then_predict_and_flush(hub, name, daily, tmp_path):
    # three orientations of a JSON table, as a publisher with nothing of ours would send them
    training = [records(daily.iloc[:300]),
                daily.iloc[300:450].to_json(orient="columns", date_format="iso"),
                daily.iloc[450:500].to_json(orient="split", date_format="iso")]
    rabbit.publish_from_another_process(name, training, tmp_path)
    assert rabbit.message_count(name) == 3

    wrong = {**CONFIG, "setup": {"target": "sales", "ds": "ds"}}  # a bad request touches no message
    with pytest.raises(DataError, match="'sales'"):
        hub.create_experiment(name, "time_series", wrong)
    assert rabbit.message_count(name) == 3

    hub.create_experiment(name, "time_series", CONFIG)  # no data: drains the queue
    assert hub.wait(name, timeout=120).state == "ready"
    assert len(hub.train_data(name)) == 500
    assert rabbit.message_count(name) == 0  # acknowledged after the training succeeded

    rabbit.publish_from_another_process(name, [records(daily.iloc[500:505]), records(daily.iloc[505:510])],
                                        tmp_path)
    result = hub.predict(name)  # the next message only
    assert [t.strftime("%Y-%m-%d") for t in result["ds"]] == [
        t.strftime("%Y-%m-%d") for t in daily["ds"].iloc[500:505]]
    assert rabbit.message_count(name) == 1
    assert hub.flush(name) == 1
    assert rabbit.message_count(name) == 0


def test_streaming_predicts_100_batches_in_order(hub, name, daily):
    trained(hub, name, daily.iloc[:400])
    events = []
    subscription = hub.subscribe(lambda e: events.append(e.data.get("watching")) if e.name == name else None,
                                 kinds=["state_changed"])
    assert hub.watch(name) is True and hub.watching(name)
    assert hub.watch(name) is False  # once
    rows = daily.iloc[400:500]
    for i in range(100):
        hub.publish(name, rows.iloc[i:i + 1])
    expected = [t.strftime("%Y-%m-%d") for t in rows["ds"]]
    wait_for(lambda: len(predicted_ds(hub, name)) >= 100, what="100 predictions")
    assert predicted_ds(hub, name) == expected
    wait_for(lambda: rabbit.message_count(name) == 0, timeout=5, what="empty queue")
    assert hub.unwatch(name) is True  # bounded by its 2 s timeout; latency: benchmarks/bench_rabbitmq.py
    assert not hub.watching(name)
    subscription.close()
    assert [e for e in events if e is not None] == [True, False]
    again = threading.Event()  # set by a prediction of this experiment: none may come now
    with hub.subscribe(lambda e: again.set() if e.name == name else None, kinds=["predictions"]):
        hub.publish(name, rows.iloc[:1])  # not watched any more: it stays
        never(lambda: again.is_set() or rabbit.message_count(name) != 1, within=1.0,
              what="the message consumed or predicted after unwatch")
    assert rabbit.message_count(name) == 1 and len(predicted_ds(hub, name)) == 100


def test_connections_closed_by_the_broker_lose_nothing_and_predict_nothing_twice(hub, name, daily):
    trained(hub, name, daily.iloc[:400])
    hub.watch(name)
    rows = daily.iloc[400:500]
    expected = [t.strftime("%Y-%m-%d") for t in rows["ds"]]
    publisher = threading.Thread(target=rabbit.publish, args=(name, [records(rows.iloc[i:i + 1])
                                                                     for i in range(100)]))
    publisher.start()
    wait_for(lambda: len(predicted_ds(hub, name)) >= 25, what="25 predictions")
    closed = rabbit.close_connections(hub.datastream.id, "test: broker-side close during streaming")
    assert closed >= 2  # the hub's I/O connection and the watcher's consumer connection
    publisher.join(60)
    wait_for(lambda: len(predicted_ds(hub, name)) >= 100, what="100 predictions")
    # a barrier, not a pause: a marker published now is predicted after anything the broker still
    # holds (redelivered copies included), so a duplicate is in the list by the time the marker is
    marker = daily.iloc[500:501]
    rabbit.publish(name, [records(marker)])
    wait_for(lambda: marker_day(marker) in predicted_ds(hub, name), what="the marker predicted")
    assert predicted_ds(hub, name) == expected + [marker_day(marker)]  # all, in order, once each
    wait_for(lambda: rabbit.message_count(name) == 0, timeout=5, what="empty queue")

    def recovered():
        details = hub.datastream.health()["details"]
        return details["status"] == "connected" and details["reconnects"] >= 1
    wait_for(recovered, timeout=10, what="reconnected")
    details = hub.datastream.health()["details"]
    assert "CONNECTION_FORCED" in details["last_error"] and details["outages"] >= 1
    assert all(c["status"] == "connected" and c["reconnects"] >= 1 for c in details["consumers"])
    assert hub.health()["datastream"]["healthy"] is True


def test_a_broker_outage_shows_in_health_within_2_s_and_streaming_resumes(tmp_path, daily):
    proxy = rabbit.Proxy()  # the hub reaches the broker only through it: stop() is the outage
    proxy.start()
    name = rabbit.unique("outage")
    try:
        with ExperimentHub(home=str(tmp_path / "home"), rabbitmq_url=proxy.url) as hub:
            trained(hub, name, daily.iloc[:400])
            hub.watch(name)
            rows = daily.iloc[400:460]
            expected = [t.strftime("%Y-%m-%d") for t in rows["ds"]]
            rabbit.publish(name, [records(rows.iloc[i:i + 1]) for i in range(30)])
            wait_for(lambda: len(predicted_ds(hub, name)) >= 10, what="10 predictions")

            proxy.stop()  # how fast health notices is measured in benchmarks/bench_rabbitmq.py
            wait_for(lambda: not hub.datastream.health()["healthy"], timeout=10, what="unhealthy")
            health = hub.health()["datastream"]
            assert health["details"]["status"] == "unreachable" and health["details"]["error"]
            with pytest.raises(DatastreamError, match="unreachable"):
                hub.publish(name, rows.iloc[:1])  # an error a person can act on, not a hang
            assert hub.status(name).state == "ready"  # the hub keeps serving
            rabbit.publish(name, [records(rows.iloc[i:i + 1]) for i in range(30, 60)])  # the broker takes more

            proxy.start()
            wait_for(lambda: hub.datastream.health()["healthy"], timeout=10, what="healthy again")
            wait_for(lambda: len(predicted_ds(hub, name)) >= 60, what="60 predictions")
            marker = daily.iloc[460:461]  # a barrier: predicted after any duplicate still to come
            rabbit.publish(name, [records(marker)])
            wait_for(lambda: marker_day(marker) in predicted_ds(hub, name), what="the marker predicted")
            assert predicted_ds(hub, name) == expected + [marker_day(marker)]
            assert rabbit.message_count(name) == 0
            assert hub.datastream.health()["details"]["outages"] >= 1
    finally:
        proxy.stop()
        rabbit.delete_queues(name, name + ".dead")


def test_an_unreachable_broker_is_reported_and_the_hub_keeps_serving(tmp_path, daily):
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"  # nothing listens there
    with ExperimentHub(home=str(tmp_path / "home"), rabbitmq_url=url) as hub:  # does not wait for the broker
        health = hub.datastream.health()
        assert hub.health()["datastream"]["healthy"] is False  # (its first call also sets up MLflow)
        assert health["healthy"] is False
        assert health["details"]["status"] == "unreachable"
        assert "refused" in health["details"]["error"]
        for call in (lambda: hub.publish("q", daily.iloc[:3]), lambda: hub.flush("q"),
                     lambda: hub.create_experiment("from-queue", "time_series", CONFIG)):
            with pytest.raises(DatastreamError, match=r"unreachable.*rabbitmq-server"):
                call()
        assert "from-queue" not in hub.experiments
        trained(hub, "direct", daily)  # data passed directly needs no broker
        assert hub.status("direct").state == "ready"


def test_malformed_messages_land_in_the_dead_letter_queue_with_the_reason(hub, name, daily):
    rabbit.publish(name, [
        records(daily.iloc[:300]),
        "this is not JSON",
        "42",
        json.dumps([{"ds": "2013-06-01", "other": 1.0}]),  # lacks the target the others have
        daily.iloc[300:400].to_json(orient="columns", date_format="iso"),
    ])
    hub.create_experiment(name, "time_series", CONFIG)
    assert hub.wait(name, timeout=120).state == "ready"
    assert len(hub.train_data(name)) == 400  # the good messages, nothing retried forever
    assert rabbit.message_count(name) == 0
    dead = rabbit.dead_letters(name)
    assert [body for body, _ in dead] == [b"this is not JSON", b"42", json.dumps(
        [{"ds": "2013-06-01", "other": 1.0}]).encode()]
    reasons = [reason for _, reason in dead]
    assert "not valid JSON" in reasons[0]
    assert "must be a table" in reasons[1]
    assert "lacks column 'y'" in reasons[2]

    rabbit.publish(name, ["{not json", json.dumps([{"when": "2013-07-01"}])])
    with pytest.raises(DataError, match="not valid JSON"):
        hub.predict(name)
    with pytest.raises(DataError, match=r"\['ds'\] not in the rows to predict"):
        hub.predict(name)
    assert rabbit.message_count(name) == 0
    assert len(rabbit.dead_letters(name)) == 5

    hub.watch(name)
    rabbit.publish(name, [records(daily.iloc[400:401]), "[1, 2, 3]", records(daily.iloc[401:402])])
    wait_for(lambda: len(predicted_ds(hub, name)) >= 2, what="2 predictions")
    wait_for(lambda: len(rabbit.dead_letters(name)) == 6, timeout=5, what="6 dead letters")
    assert predicted_ds(hub, name) == [t.strftime("%Y-%m-%d") for t in daily["ds"].iloc[400:402]]
    assert "list of records" in rabbit.dead_letters(name)[-1][1]
    assert rabbit.message_count(name) == 0
    assert {d.reason for d in hub.datastream.dead_letters(name)} == {r for _, r in rabbit.dead_letters(name)}


def test_publish_command_sends_a_csv_file_as_record_messages(hub, name, daily, tmp_path):
    exe = str(Path(sys.executable).with_name("experimenthub"))
    csv = tmp_path / "daily.csv"
    daily.to_csv(csv, index=False)
    env = {k: v for k, v in os.environ.items() if k != "EXPERIMENTHUB_RABBITMQ_URL"}
    env["EXPERIMENTHUB_HOME"] = str(tmp_path / "cli-home")
    done = subprocess.run([exe, "publish", name, str(csv), "--rabbitmq-url", rabbit.URL, "--batch-rows", "100"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"published 510 rows in 6 message(s) to queue '{name}'" in done.stdout
    assert rabbit.message_count(name) == 6
    hub.create_experiment(name, "time_series", CONFIG)  # the same format as hub.publish: it trains
    hub.wait(name, timeout=120)
    assert len(hub.train_data(name)) == 510 and rabbit.message_count(name) == 0

    missing = subprocess.run([exe, "publish", name, str(csv)], capture_output=True, text=True, timeout=60,
                             env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "--rabbitmq-url" in missing.stderr


def test_batches_taken_on_a_lost_connection_are_requeued_and_never_used_twice(hub, name, daily):
    stream = hub.datastream
    rabbit.publish(name, [records(daily.iloc[i:i + 5]) for i in range(0, 15, 5)])
    used = stream.drain(name)  # e.g. a training running while the connection drops
    assert len(used.bodies) == 3 and rabbit.message_count(name) == 0
    assert rabbit.close_connections(f"experimenthub {stream.id} io") == 1
    wait_for(lambda: rabbit.message_count(name) == 3, timeout=10, what="requeued by the broker")
    wait_for(lambda: stream.health()["healthy"], timeout=10, what="reconnected")
    used.ack()  # the training succeeded: its tags are stale, nothing is settled on the new connection ...
    # ... but the redelivered copies are acknowledged now, with no drain to come: left in the queue, another
    # process (a restarted kernel, a second hub), which does not know they were used, would use them again
    wait_for(lambda: rabbit.message_count(name) == 0, timeout=10, what="the used copies acknowledged")
    assert stream.drain(name) is None

    rabbit.publish(name, [records(daily.iloc[20:25])])
    failed = stream.drain(name)  # e.g. a training that will fail
    rabbit.close_connections(f"experimenthub {stream.id} io")
    wait_for(lambda: rabbit.message_count(name) == 1, timeout=10, what="requeued by the broker")
    wait_for(lambda: stream.health()["healthy"], timeout=10, what="reconnected")
    failed.nack()
    again = stream.drain(name)  # not used: it comes back
    assert again.bodies == failed.bodies
    again.ack()
    assert rabbit.message_count(name) == 0
