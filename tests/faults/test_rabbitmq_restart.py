"""RabbitMQ really going away: a private broker node (conftest ``node``) is stopped cleanly or
killed while the hub streams predictions from it or trains on a queue it drained, then started
again with the same data. Nothing is lost, nothing is used twice, and health shows the outage and
the recovery.

Publishing and checking are done with plain pika (tests/rabbit.py), never through the code under
test; every test uses queues of its own (uuid names).
"""

from __future__ import annotations

import json
import threading

import pytest
import rabbit
from helpers import wait_for

from experimenthub import ExperimentHub, datasets
from experimenthub.tables import to_records

FAST = {"setup": {"target": "y", "ds": "ds"},
        "create_model": {"model_type": "Prophet", "params": {"uncertainty_samples": 50}}}
# MCMC makes the fit last seconds (not a fraction of one): long enough to take the broker away under it
SLOW = {"setup": {"target": "y", "ds": "ds"},
        "create_model": {"model_type": "Prophet", "params": {"uncertainty_samples": 50, "mcmc_samples": 40}}}
ENDLESS = {"setup": {"target": "y", "ds": "ds"},  # a fit that holds the only training slot until stopped
           "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 5000}}}


@pytest.fixture(scope="module")
def daily():
    return datasets.load("prophet_daily")  # 510 daily rows: ds, y


@pytest.fixture(scope="module")
def hub(private_node, tmp_path_factory):
    """One hub on the private node for the module (its MLflow store is set up once); one training
    at a time, so that a training can be made to wait for another."""
    with ExperimentHub(home=str(tmp_path_factory.mktemp("fault-home")), rabbitmq_url=private_node.url,
                       max_trainings=1) as hub:
        yield hub


@pytest.fixture
def queue(node, request):
    """A fresh experiment (and queue) name; its experiment and queues are gone after the test."""
    name = rabbit.unique("fault")
    yield name
    node.start()  # a failed test may have left it down
    if "hub" in request.fixturenames:
        hub = request.getfixturevalue("hub")
        if name in hub.experiments:
            hub.delete(name)  # stops its watcher too
    rabbit.delete_queues(name, name + ".dead", url=node.url)


def records(frame) -> str:
    return json.dumps(to_records(frame))


def days(frame) -> list[str]:
    return [t.strftime("%Y-%m-%d") for t in frame["ds"]]


def predicted(hub, name) -> list[str]:
    frame = hub.predictions(name)
    return [] if frame is None else days(frame)


def healthy(hub) -> bool:
    return hub.health(max_age=0)["datastream"]["healthy"]


def take_down(node, how: str) -> None:
    node.stop() if how == "stop" else node.kill()


class HealthLog:
    """Polls ``hub.health()["datastream"]`` in a thread, as a dashboard would (its 1 s cache
    included), and keeps each change of ``healthy``: an outage shows as ``[True, False, True]``."""

    def __init__(self, hub) -> None:
        self._hub = hub
        self.seen: list[bool] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> HealthLog:
        self._thread.start()
        self.wait_until(True)
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(10)

    def wait_until(self, healthy: bool, timeout: float = 30.0) -> None:
        wait_for(lambda: self.seen and self.seen[-1] is healthy, timeout=timeout,
                 what=f"the health poller seeing healthy={healthy}")

    def _poll(self) -> None:
        while not self._done.is_set():
            value = bool(self._hub.health()["datastream"]["healthy"])
            if not self.seen or self.seen[-1] != value:
                self.seen.append(value)
            self._done.wait(0.1)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_broker_restart_mid_stream_loses_nothing_and_predicts_nothing_twice(node, hub, queue, daily, how):
    """The broker goes away while the watcher works through the batches: the one being predicted
    loses its ack, the rest wait on the broker's disk; after the restart and more batches, each
    is predicted once, in order, and health has shown the outage and the recovery."""
    hub.create_experiment(queue, "time_series", FAST, data=daily.iloc[:400])
    hub.wait(queue, timeout=120)
    hub.watch(queue)
    outages = hub.health(max_age=0)["datastream"]["details"]["outages"]
    rows = daily.iloc[400:440]
    expected = days(rows)
    wait_for(lambda: healthy(hub), timeout=10, what="the watcher connected")
    with HealthLog(hub) as health:
        rabbit.publish(queue, [records(rows.iloc[i:i + 1]) for i in range(30)], url=node.url)
        wait_for(lambda: len(predicted(hub, queue)) >= 3, what="3 predictions")
        take_down(node, how)
        assert len(predicted(hub, queue)) < 30, "all predicted before the outage: publish more batches"
        health.wait_until(False)
        down = hub.health(max_age=0)["datastream"]["details"]
        assert down["status"] == "unreachable" and down["error"]
        node.start()
        health.wait_until(True)
    assert health.seen == [True, False, True]  # one outage, one recovery

    rabbit.publish(queue, [records(rows.iloc[i:i + 1]) for i in range(30, 40)], url=node.url)
    wait_for(lambda: len(predicted(hub, queue)) >= 40, timeout=60, what="40 predictions")
    # a barrier, not a pause: a marker published now is predicted after anything the broker still
    # holds (redelivered copies included), so a duplicate is in the list by the time the marker is
    marker = daily.iloc[440:441]
    rabbit.publish(queue, [records(marker)], url=node.url)
    wait_for(lambda: days(marker)[0] in predicted(hub, queue), what="the marker predicted")
    assert predicted(hub, queue) == expected + days(marker)  # every batch, once, in order
    wait_for(lambda: rabbit.message_count(queue, url=node.url) == 0, timeout=10, what="empty queue")
    assert not rabbit.message_count(queue + ".dead", url=node.url)  # nothing dead-lettered
    assert hub.watcher_status(queue)["rejected"] == 0
    details = hub.health(max_age=0)["datastream"]["details"]
    assert details["outages"] > outages
    assert [c["status"] for c in details["consumers"]] == ["connected"]
    assert details["consumers"][0]["reconnects"] >= 1


@pytest.mark.parametrize(("how", "when"), [("kill", "fit ends while down"), ("kill", "stopped while down"),
                                           ("stop", "fit starts after the restart")])
def test_a_broker_restart_mid_training_drain_never_loses_nor_half_acks(node, hub, queue, daily, how, when):
    """The training drained the queue; its messages are held (unacknowledged) on a connection the
    restart takes away. Whatever the training's fate, each message ends up used exactly once."""
    rows = daily.iloc[:300]
    bodies = [records(rows.iloc[i:i + 10]) for i in range(0, len(rows), 10)]
    rabbit.publish(queue, bodies, url=node.url)
    blocker = queue + "-blocker"
    if when == "fit starts after the restart":  # the training waits for the only slot through the restart
        hub.create_experiment(blocker, "time_series", ENDLESS, data=daily)
        wait_for(lambda: hub.status(blocker).stage == "fitting", timeout=120, what="the blocker fitting")
        hub.create_experiment(queue, "time_series", FAST)  # no data: drains the queue, then waits
        assert hub.status(queue).queue_position == 0
    else:
        hub.create_experiment(queue, "time_series", SLOW if when == "fit ends while down" else ENDLESS)  # drains
        wait_for(lambda: hub.status(queue).stage == "fitting", timeout=120, what="the fit running")
    assert rabbit.message_count(queue, url=node.url) == 0  # held by the training, not acknowledged yet

    take_down(node, how)
    wait_for(lambda: not healthy(hub), timeout=10, what="health showing the outage")
    if when == "stopped while down":
        assert hub.stop_training(queue)
    if when != "fit starts after the restart":
        hub.wait(queue, timeout=120, raise_on_failure=False)
    node.start()
    wait_for(lambda: healthy(hub), timeout=30, what="health showing the recovery")
    if when == "fit starts after the restart":
        assert hub.status(queue).queue_position == 0  # still waiting: its ack goes out on the new connection
        assert hub.stop_training(blocker)
        hub.delete(blocker)
    status = hub.wait(queue, timeout=120, raise_on_failure=False)
    assert status.state == ("stopped" if when == "stopped while down" else "ready")

    if status.state == "ready":  # acknowledged exactly once: nothing left for anyone to use again
        assert sorted(days(hub.train_data(queue))) == days(rows)
        wait_for(lambda: rabbit.message_count(queue, url=node.url) == 0, timeout=15,
                 what="the used messages acknowledged")
        left: list[str] = []
    else:  # failed or stopped: every message back in the queue, none half-acknowledged
        wait_for(lambda: rabbit.message_count(queue, url=node.url) == len(bodies), timeout=15,
                 what="every message back in the queue")
        left = days(rows)

    # train again from the queue: what is left there (and only that) plus what arrives now
    more = daily.iloc[300:320]
    rabbit.publish(queue, [records(more.iloc[i:i + 10]) for i in range(0, len(more), 10)], url=node.url)
    hub.delete(queue)
    hub.create_experiment(queue, "time_series", FAST)
    assert hub.wait(queue, timeout=120).state == "ready"
    assert sorted(days(hub.train_data(queue))) == left + days(more)  # every row once
    assert rabbit.message_count(queue, url=node.url) == 0



def test_used_messages_a_restart_puts_back_are_acknowledged_again(node, queue):
    """Used messages come back to the queue when their ack went out while the broker was down
    (lost), and also when it was acknowledged just before the broker was killed (RabbitMQ writes
    acks to disk lazily and forgets them). The stream acknowledges them again once the broker is
    back, for a drained batch and for a consumer alike, even one stopped meanwhile: left in the
    queue, they would be used again by any other process (a restarted kernel, a second hub)."""
    from experimenthub.plugins.rabbitmq_stream import RabbitMQDatastream

    watched = queue + "-watched"
    stream = RabbitMQDatastream(node.url)
    try:
        rabbit.publish(queue, [f'[{{"i": {i}}}]' for i in range(20)], url=node.url)
        rabbit.publish(watched, [f'[{{"i": {i}}}]' for i in range(3)], url=node.url)
        stream.drain(queue).ack()  # returns once the broker processed the ack
        assert rabbit.message_count(queue, url=node.url) == 0
        held = []
        consumer = stream.consume(watched, held.append)
        wait_for(lambda: held, timeout=10, what="a delivery")
        held[0].ack()  # with prefetch 1, the next delivery says the broker processed this ack
        wait_for(lambda: len(held) == 2, timeout=10, what="the next delivery")

        node.kill()
        wait_for(lambda: not stream.health()["healthy"], timeout=10, what="the outage seen")
        held[1].ack()  # used while the broker is down: its ack has nowhere to go
        consumer.stop()
        node.start()
        wait_for(lambda: rabbit.message_count(queue, url=node.url) == 0, timeout=15,
                 what="the drained messages acknowledged again")
        wait_for(lambda: rabbit.message_count(watched, url=node.url) == 1, timeout=15,
                 what="the two consumed messages acknowledged again, the third left")
        assert stream.next_batch(watched).bodies == [b'[{"i": 2}]']
    finally:
        stream.close()
        rabbit.delete_queues(watched, watched + ".dead", url=node.url)
