"""Many experiments at once: the bounded queue (order, stop of queued and running jobs), every run
written however many train together, on the embedded sqlite store and on a real ``mlflow server``
whose backend store is the machine's PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import never, wait_for
from test_settings_and_registry import MeanModel

from experimenthub import ExperimentHub, GroupsRejected, InvalidName, TrainingFailed

PROPHET = {"setup": {"target": "y"}, "create_model": {"model_type": "Prophet", "params": {}}}


class GatedModel(MeanModel):
    """Fits only once the file named in its config exists: the test decides when each job ends,
    so queue order and stops are checked without guessing at durations. Runs in a worker process."""

    type_name = "gated"

    @classmethod
    def parse_config(cls, config):
        gate = (config or {}).get("gate")
        parsed = super().parse_config({k: v for k, v in (config or {}).items() if k != "gate"})
        parsed["gate"] = gate
        return parsed

    def fit(self, data, progress):
        import time

        progress("fitting", 0.5)
        while not Path(self.config["gate"]).exists():
            time.sleep(0.01)
        return super().fit(data, progress)


def series(count: int, rows: int = 365, seed: int = 0) -> pd.DataFrame:
    """``count`` daily series of ``rows`` days in one long table with a ``sensor`` column."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2023-01-01", periods=rows, freq="D")
    season = np.sin(2 * np.pi * np.arange(rows) / 7)
    return pd.concat([pd.DataFrame({"ds": stamps, "y": 20 + 3 * season + rng.normal(0, 1, rows),
                                    "sensor": f"sensor {i}"}) for i in range(count)], ignore_index=True)


def assert_fully_logged(hub: ExperimentHub, names: list[str]) -> None:
    for name in names:
        status = hub.status(name)
        assert status.state == "ready" and status.tracking == "logged", (name, status)
        run = hub.tracking.get_run(status.run_id)
        assert run.status == "FINISHED" and run.experiment_name == name
        assert {"mae", "rmse", "coverage"} <= set(run.metrics)
        assert hub.tracking.download(run.run_id, "model/MLmodel", str(hub.settings.home / "dl" / name))


@pytest.fixture
def gated_hub(tmp_path):
    with ExperimentHub(home=str(tmp_path / "home"), max_trainings=1) as hub:
        hub.register_experiment_type("gated", GatedModel)
        yield hub


def starts(hub: ExperimentHub) -> list[str]:
    """Names in the order their jobs leave the queue (stage 'starting'), recorded from events."""
    order: list[str] = []
    hub.subscribe(lambda e: order.append(e.name) if e.data.get("stage") == "starting" else None, ["progress"])
    return order


def test_queue_is_fifo_and_bounded(gated_hub, tmp_path):
    order = starts(gated_hub)
    gates = {f"g{i}": tmp_path / f"gate{i}" for i in range(4)}
    for name, gate in gates.items():
        gated_hub.create_experiment(name, "gated", {"gate": str(gate)}, data=pd.DataFrame({"y": [1.0, 2.0]}))
    wait_for(lambda: gated_hub.status("g0").stage == "fitting", 120, "the first job to fit")
    positions = [gated_hub.status(n).queue_position for n in ("g1", "g2", "g3")]
    assert positions == [0, 1, 2]
    assert all(gated_hub.status(n).stage == "queued" and gated_hub.status(n).state == "training"
               for n in ("g1", "g2", "g3"))
    assert gated_hub.status("g0").executor == "local" and gated_hub.status("g1").executor is None
    for name in gates:  # one at a time: the next starts only when the running one ends
        wait_for(lambda n=name: gated_hub.status(n).stage == "fitting", 60, f"{name} to fit")
        never(lambda: sum(gated_hub.status(x).stage == "fitting" for x in gates) > 1, 0.2,
              f"more than one job fitting while {name} runs")
        gates[name].touch()
        gated_hub.wait(name, timeout=60)
    assert order == list(gates)


def test_stop_a_queued_job_and_a_running_one(gated_hub, tmp_path):
    data = pd.DataFrame({"y": [1.0, 2.0]})
    gated_hub.create_experiment("running", "gated", {"gate": str(tmp_path / "never")}, data=data)
    gated_hub.create_experiment("queued", "gated", {"gate": str(tmp_path / "never")}, data=data)
    gated_hub.create_experiment("next", "gated", {"gate": str(tmp_path / "open")}, data=data)
    wait_for(lambda: gated_hub.status("running").stage == "fitting", 120, "the first job to fit")
    assert gated_hub.status("next").queue_position == 1

    assert gated_hub.stop_training("queued") is True  # leaves the queue without starting
    stopped = gated_hub.status("queued")
    assert stopped.state == "stopped" and stopped.run_id is None and stopped.queue_position is None
    assert gated_hub.status("next").queue_position == 0

    (tmp_path / "open").touch()
    assert gated_hub.stop_training("running") is True  # its worker is killed; the next one starts
    assert gated_hub.wait("next", timeout=60).state == "ready"
    assert gated_hub.status("queued").state == "stopped" and gated_hub.status("queued").run_id is None
    assert [r.status for r in gated_hub.runs("queued")] == []


def test_stop_and_delete_take_lists(gated_hub, tmp_path):
    data = pd.DataFrame({"y": [1.0, 2.0]})
    for name in ("a", "b", "c"):
        gated_hub.create_experiment(name, "gated", {"gate": str(tmp_path / "never")}, data=data)
    assert gated_hub.stop_training(["a", "b", "c"]) == {"a": True, "b": True, "c": True}
    assert gated_hub.stop_training(["a"]) == {"a": False}
    with pytest.raises(LookupError, match="nope"):
        gated_hub.delete(["a", "nope"])
    assert set(gated_hub.experiments) == {"a", "b", "c"}  # nothing deleted when one name is unknown
    gated_hub.delete(["a", "b"])
    assert set(gated_hub.experiments) == {"c"}


def test_create_experiments_names_and_all_or_nothing(embedded_hub):
    long = series(3, rows=60)
    long.loc[long["sensor"] == "sensor 2", "sensor"] = "Line/2 (east)"
    bad = long.copy()
    bad["y"] = bad["y"].astype(object)
    bad.loc[bad["sensor"] == "sensor 1", "y"] = "n/a"
    with pytest.raises(GroupsRejected, match="p_sensor_1: column 'y' must be numeric") as refused:
        embedded_hub.create_experiments("time_series", PROPHET, bad, by="sensor", prefix="p_")
    assert list(refused.value.groups) == ["p_sensor_1"] and embedded_hub.experiments == {}

    made = embedded_hub.create_experiments("time_series", PROPHET, long, by="sensor", prefix="p_")
    assert [e.name for e in made] == ["p_sensor_0", "p_sensor_1", "p_Line_2_east"]
    assert "sensor" not in embedded_hub.train_data("p_sensor_0").columns
    statuses = embedded_hub.wait([e.name for e in made], timeout=300, progress=False)
    assert {s.state for s in statuses.values()} == {"ready"}

    with pytest.raises(GroupsRejected, match="both become the name 'x_a'"):
        embedded_hub.create_experiments("time_series", PROPHET, {"a": long, "a ": long}, prefix="x_")
    with pytest.raises(GroupsRejected, match="exists"):
        embedded_hub.create_experiments("time_series", PROPHET, long, by="sensor", prefix="p_")
    with pytest.raises(InvalidName):
        embedded_hub.create_experiment("health", "time_series", PROPHET, data=long.head(30))


class FailingModel(MeanModel):
    type_name = "failing"

    def fit(self, data, progress):
        raise ValueError("no fit for you")


def test_wait_for_many_returns_failed_ones_without_raising(embedded_hub, capsys):
    embedded_hub.register_experiment_type("mean", MeanModel)
    embedded_hub.register_experiment_type("failing", FailingModel)
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0]})
    embedded_hub.create_experiment("good", "mean", {}, data=data)
    embedded_hub.create_experiment("bad", "failing", {}, data=data)
    statuses = embedded_hub.wait(["good", "bad"], timeout=120)
    assert statuses["good"].state == "ready"
    assert statuses["bad"].state == "failed" and "no fit for you" in statuses["bad"].error
    assert "2/2 settled (failed 1, ready 1)" in capsys.readouterr().err  # plain lines outside a notebook


@pytest.mark.parametrize("store", ["embedded", "postgres_server"])
def test_fifty_at_once_every_run_logged(store, tmp_path, request):
    uri = None if store == "embedded" else request.getfixturevalue("postgres_mlflow_server")
    long = series(50)
    with ExperimentHub(home=str(tmp_path / "home"), mlflow_uri=uri) as hub:
        made = hub.create_experiments("time_series", PROPHET, long, by="sensor")
        names = [e.name for e in made]
        queued = [n for n in names if hub.status(n).stage == "queued"]
        assert len(queued) >= 50 - hub.settings.max_trainings  # the rest wait their turn
        statuses = hub.wait(names, timeout=900, tracked=True, progress=False)
        assert {s.state for s in statuses.values()} == {"ready"}, {n: s.error for n, s in statuses.items()}
        assert_fully_logged(hub, names)
        assert len({s.run_id for s in statuses.values()}) == 50


def test_concurrent_creates_from_threads(embedded_hub):
    """Several faces (REST, widgets, cells) creating at once: every experiment trains, none is lost."""
    long = series(12, rows=60)
    parts = {name: part.drop(columns="sensor") for name, part in long.groupby("sensor")}
    errors: list[BaseException] = []

    def create(name: str, frame: pd.DataFrame) -> None:
        try:
            embedded_hub.create_experiment(name.replace(" ", "_"), "time_series", PROPHET, data=frame)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=item) for item in parts.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    statuses = embedded_hub.wait(list(embedded_hub.experiments), timeout=600, progress=False)
    assert len(statuses) == 12 and {s.state for s in statuses.values()} == {"ready"}


def test_a_failed_training_leaves_saves_and_lineage_on_the_run_of_the_model_in_use(tmp_path):
    with ExperimentHub(home=str(tmp_path / "home")) as hub:
        hub.register_experiment_type("mean", MeanModel)
        hub.create_experiment("m", "mean", {}, data=pd.DataFrame({"y": [1.0, 2.0, 6.0]}))
        first = hub.wait("m", tracked=True).run_id
        hub.train("m", data=pd.DataFrame({"x": [1.0, 2.0]}))  # no y: this fit fails, its run holds no model
        with pytest.raises(TrainingFailed, match="KeyError"):
            hub.wait("m", tracked=True)
        assert hub.status("m").state == "failed" and hub.status("m").run_id != first
        assert hub.save("m") == first  # the model's predictions and figures go to the model's own run
        hub.train("m", data=pd.DataFrame({"y": [3.0, 4.0]}))
        third = hub.wait("m", tracked=True).run_id
        assert hub.tracking.get_run(third).tags["experimenthub.replaces"] == first


def test_a_job_stopped_while_it_is_being_queued_never_starts(gated_hub, tmp_path):
    """A subscriber sees the job queued before the job enters the queue (events are published
    first); a stop from there must keep it out, not let it start later and open a run."""
    (tmp_path / "open").touch()
    starts_seen = starts(gated_hub)

    def stop_on_queue(event):
        if event.name == "early" and event.data.get("status", {}).get("stage") == "queued":
            gated_hub.stop_training("early")
    gated_hub.subscribe(stop_on_queue, ["state_changed"])
    data = pd.DataFrame({"y": [1.0, 2.0]})
    gated_hub.create_experiment("early", "gated", {"gate": str(tmp_path / "open")}, data=data)
    gated_hub.create_experiment("after", "gated", {"gate": str(tmp_path / "open")}, data=data)
    assert gated_hub.wait("after", timeout=60).state == "ready"  # one slot: "early" would have gone first
    assert gated_hub.status("early").state == "stopped" and "early" not in starts_seen
    assert gated_hub.runs("early") == [] and gated_hub.status("early").queue_position is None
