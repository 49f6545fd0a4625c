"""Streaming mode on both datastreams (in-process and RabbitMQ): batches meeting a busy experiment
wait and keep their order, malformed ones are dead-lettered, watchers stop on unwatch, delete and
close."""

from __future__ import annotations

import threading

import pytest
import rabbit
from helpers import never, wait_for

from experimenthub import ExperimentHub, ExperimentNotFound, datasets

CONFIG = {"setup": {"target": "y", "ds": "ds"},
          "create_model": {"model_type": "Prophet", "params": {"uncertainty_samples": 50}}}


@pytest.fixture(scope="module")
def daily():
    return datasets.load("prophet_daily")


@pytest.fixture(params=["memory", "rabbitmq"])
def hub(request, tmp_path):
    url = rabbit.URL if request.param == "rabbitmq" else None
    with ExperimentHub(home=str(tmp_path / "home"), rabbitmq_url=url) as hub:
        yield hub


@pytest.fixture
def name(hub, daily):
    name = rabbit.unique("watch")
    hub.create_experiment(name, "time_series", CONFIG, data=daily.iloc[:400])
    hub.wait(name, timeout=120)
    yield name
    if rabbit.URL and hub.settings.rabbitmq_url:
        rabbit.delete_queues(name, name + ".dead")


def predicted(hub, name) -> list[str]:
    frame = hub.predictions(name)
    return [] if frame is None else [t.strftime("%Y-%m-%d") for t in frame["ds"]]


def days(frame) -> list[str]:
    return [t.strftime("%Y-%m-%d") for t in frame["ds"]]


def test_batches_wait_while_the_experiment_retrains_and_keep_their_order(hub, name, daily):
    hub.watch(name)
    first, second = daily.iloc[400:405], daily.iloc[405:415]
    for i in range(len(first)):
        hub.publish(name, first.iloc[i:i + 1])
    wait_for(lambda: predicted(hub, name) == days(first), what="first batches predicted")
    hub.retrain(name)  # busy now: arriving batches go back to the queue until it is ready
    for i in range(len(second)):
        hub.publish(name, second.iloc[i:i + 1])
    hub.wait(name, timeout=120)
    wait_for(lambda: len(predicted(hub, name)) >= len(second), what="second batches predicted")
    # a barrier, not a pause: a marker published now is predicted after anything still in the queue,
    # so a batch predicted twice (or late) is in the list by the time the marker is
    marker = daily.iloc[415:416]
    hub.publish(name, marker)
    wait_for(lambda: days(marker)[0] in predicted(hub, name), what="the marker predicted")
    assert predicted(hub, name) == days(second) + days(marker)  # predictions since the retraining, in order
    assert hub.watcher_status(name)["requeued"] >= 1
    wait_for(lambda: hub.datastream.depth(name) == 0, timeout=5, what="empty queue")


def test_malformed_batches_are_dead_lettered_while_streaming(hub, name, daily):
    hub.watch(name)
    for body in (b"[{", b'{"ds": 1}', b"[]"):
        hub.datastream.publish(name, body)
    hub.publish(name, daily.iloc[400:402])
    wait_for(lambda: len(predicted(hub, name)) == 2, what="the good batch predicted")
    dead = hub.datastream.dead_letters(name)
    assert [d.body for d in dead] == [b"[{", b'{"ds": 1}', b"[]"]
    assert "not valid JSON" in dead[0].reason and "empty table" in dead[2].reason
    assert hub.datastream.depth(name) == 0


def test_watching_stops_on_unwatch_delete_and_close(hub, name, daily):
    with pytest.raises(ExperimentNotFound):
        hub.watch("no-such-experiment")
    assert hub.unwatch(name) is False and not hub.watching(name)
    hub.watch(name)
    assert hub.unwatch(name)

    hub.watch(name)
    hub.delete(name)
    hub.publish(name, daily.iloc[400:401])
    wait_for(lambda: not hub.watching(name), timeout=10, what="watching stopped")
    wait_for(lambda: hub.datastream.depth(name) == 1, timeout=5, what="message back in the queue")

    hub.create_experiment(name, "time_series", CONFIG, data=daily.iloc[:400])
    hub.wait(name, timeout=120)
    hub.watch(name)
    wait_for(lambda: len(predicted(hub, name)) == 1, what="the waiting batch predicted")
    hub.close()
    assert not hub.watching(name)
    wait_for(lambda: not [t for t in threading.enumerate()
                          if t.name in (f"experimenthub-watch-{name}", f"experimenthub-consume-{name}")],
             timeout=5, what="watcher threads gone")


def test_concurrent_watch_calls_start_one_watcher_and_delete_stops_it(hub, name, daily):
    results = []
    threads = [threading.Thread(target=lambda: results.append(hub.watch(name))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert len([t for t in threading.enumerate() if name in t.name and t.is_alive()]) >= 1
    hub.delete(name)  # deleting the experiment stops its watcher: nothing keeps consuming its queue
    assert not hub.watching(name)
    hub.publish(name, daily.iloc[400:460])
    # the message waits for the next experiment of that name: taken even for a moment, it would show
    never(lambda: hub.datastream.depth(name) != 1, within=1.0, what="the message left the queue")
    wait_for(lambda: not [t for t in threading.enumerate()
                          if t.name in (f"experimenthub-watch-{name}", f"experimenthub-consume-{name}")],
             timeout=5, what="watcher threads gone")
    hub.create_experiment(name, "time_series", CONFIG)  # ... which trains on it
    assert hub.wait(name, timeout=120).state == "ready" and len(hub.train_data(name)) == 60
