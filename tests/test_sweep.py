"""Sweeps: one child run per candidate under the sweep's parent run, the argmin of the backtest
metric becomes the model; stopping the sweep stops every candidate; the evaluation table."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import never, wait_for
from test_many import GatedModel

from experimenthub import ExperimentHub, InvalidConfig, LimitExceeded

CONFIG = {"setup": {"target": "value"}, "create_model": {"model_type": "Prophet", "params": {}},
          "evaluate": {"horizon": 10, "folds": 2}}
GRID = {"changepoint_prior_scale": [0.001, 0.01, 0.1, 0.5]}


def test_sweep_of_four_candidates_keeps_the_argmin(embedded_hub, daily):
    hub = embedded_hub
    hub.create_experiment("sales", "time_series", CONFIG, data=daily)
    first_run = hub.wait("sales", tracked=True).run_id
    assert {"cv_mape", "baseline_cv_mae", "cv_rel_mae"} <= set(hub.status("sales").metrics)
    table = hub.evaluation("sales")
    assert set(table["fold"]) == {1, 2} and set(table["step"]) == set(range(1, 11))

    hub.sweep("sales", GRID)
    status = hub.wait("sales", timeout=900, tracked=True)
    candidates = hub.sweep_candidates("sales")
    assert len(candidates) == 4 and set(candidates["status"]) == {"FINISHED"}
    best = candidates.iloc[0]
    assert best["cv_mape"] == candidates["cv_mape"].min()
    parent = hub.tracking.get_run(best["run_id"]).tags["mlflow.parentRunId"]
    model_run = hub.tracking.get_run(status.run_id)
    assert model_run.tags["experimenthub.sweep"] == parent and model_run.tags["experimenthub.role"] == "model"
    assert model_run.run_id not in set(candidates["run_id"]) | {first_run, parent}
    assert status.metrics["cv_mape"] == pytest.approx(best["cv_mape"])
    assert float(hub.cfg("sales")["create_model"]["params"]["changepoint_prior_scale"]) == float(
        best["params.changepoint_prior_scale"])
    assert hub.tracking.get_run(parent).params["metric"] == "cv_mape"
    history = hub.compare("sales")  # model runs only: never a candidate or the parent by accident
    assert list(history["run_id"]) == [status.run_id, first_run] and history.iloc[0]["sweep"] == parent
    loaded = hub.load("sales")
    assert loaded.run_id == status.run_id


def test_sweep_refuses_bad_candidates_before_anything_starts(embedded_hub, daily):
    embedded_hub.create_experiment("s", "time_series", CONFIG, data=daily)
    embedded_hub.wait("s")
    runs = len(embedded_hub.runs("s"))
    with pytest.raises(InvalidConfig, match="candidate 1"):
        embedded_hub.sweep("s", [{"changepoint_prior_scale": 0.1}, {"changepoint_prior_scale": -1}])
    with pytest.raises(InvalidConfig, match="grid"):
        embedded_hub.sweep("s", {"changepoint_prior_scale": []})
    huge = {f"p{i}": list(range(10)) for i in range(8)}  # 10**8 candidates, counted before any is made
    with pytest.raises(LimitExceeded, match="100000000 candidates.*MAX_SWEEP_CANDIDATES"):
        embedded_hub.sweep("s", huge)
    assert embedded_hub.status("s").state == "ready" and len(embedded_hub.runs("s")) == runs


def test_stopping_a_sweep_stops_every_candidate(tmp_path):
    gate = tmp_path / "gate"
    with ExperimentHub(home=str(tmp_path / "home"), max_trainings=2) as hub:
        hub.register_experiment_type("gated", GatedModel)
        hub.create_experiment("g", "gated", {"gate": str(gate)}, data=pd.DataFrame({"y": [1.0, 2.0, 6.0]}))
        gate.touch()
        hub.wait("g", tracked=True)
        gate.unlink()
        hub.sweep("g", [{"a": i} for i in range(4)], metric="mean")
        wait_for(lambda: hub.status("g").stage.startswith("sweep") and hub.status("g").queue_position == 0, 120,
                 "two candidates fitting and two queued")
        assert hub.stop_training("g") is True
        assert hub.status("g").state == "stopped"
        gate.touch()  # were any candidate still alive, it would now finish and be recorded
        never(lambda: hub.status("g").state != "stopped", 3, "the stopped sweep to move on")
        sweep_runs = [r for r in hub.runs("g") if r.tags.get("experimenthub.role") in ("sweep", "candidate")]
        wait_for(lambda: all(hub.tracking.get_run(r.run_id).status != "RUNNING" for r in sweep_runs), 60,
                 "the sweep's runs to end")
        statuses = {r.tags.get("experimenthub.role"): hub.tracking.get_run(r.run_id).status for r in sweep_runs}
        assert statuses.get("sweep") == "KILLED"
        candidates = [hub.tracking.get_run(r.run_id) for r in sweep_runs if r.tags["experimenthub.role"] == "candidate"]
        assert len(candidates) <= 2 and all(c.status == "FAILED" for c in candidates)  # queued ones never started


def test_a_sweep_stopped_at_once_gives_back_every_slot(tmp_path, daily):
    """Stopped before (or while) its candidates are queued: nothing hangs and the queue's slots are
    all free again (a job that ended before it entered the queue once kept its slot for ever)."""
    with ExperimentHub(home=str(tmp_path / "home"), max_trainings=1) as hub:
        hub.create_experiment("s", "time_series", CONFIG, data=daily)
        hub.wait("s", timeout=300)
        for _ in range(3):
            hub.sweep("s", GRID)
            hub.stop_training("s")
            assert hub.wait("s", timeout=120).state == "stopped"
        hub.train("s")  # the one slot is free: this training starts and ends
        assert hub.wait("s", timeout=300).state == "ready"
