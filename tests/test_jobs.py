"""Training jobs: a stop really stops the fit (no process left), and experiments train in parallel."""

from __future__ import annotations

import pandas as pd
import psutil
import pytest
from helpers import wait_for
from test_settings_and_registry import MeanModel

from experimenthub import TrainingFailed

LONG = {"setup": {"target": "temp_f"},
        "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 300}}}


def stan_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any("prophet_model.bin" in part for part in cmdline):
            found.append(process)
    return found


def test_stop_kills_a_long_prophet_fit(embedded_hub, hourly):
    before = {p.pid for p in stan_processes()}
    embedded_hub.create_experiment("long", "time_series", LONG, data=hourly)
    wait_for(lambda: embedded_hub.status("long").stage == "fitting", 120, "the fit to start")
    running = wait_for(lambda: [p for p in stan_processes() if p.pid not in before], 60, "CmdStan to run")

    assert embedded_hub.stop_training("long") is True
    status = embedded_hub.status("long")
    assert status.state == "stopped" and status.error is None
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in running), 10,
          "the CmdStan process to be gone")
    assert embedded_hub.stop_training("long") is False  # idempotent: nothing left to stop
    # the MLflow run is opened alongside the fit, so its id may come just after the stop
    run_id = wait_for(lambda: embedded_hub.status("long").run_id, 60, "the run id")
    wait_for(lambda: embedded_hub.tracking.get_run(run_id).status == "KILLED", 10, "the run to be KILLED")
    assert embedded_hub.wait("long", timeout=1).state == "stopped"


def test_two_experiments_train_at_once(embedded_hub, hourly):
    config = {"setup": {"target": "temp_f"},
              "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 20}}}
    data = hourly.iloc[: 24 * 90]
    embedded_hub.create_experiment("a", "time_series", config, data=data)
    embedded_hub.create_experiment("b", "time_series", config, data=data)
    wait_for(lambda: len(stan_processes()) >= 2, 120, "two CmdStan fits running at the same time")
    assert embedded_hub.wait("a", timeout=300).state == "ready"
    assert embedded_hub.wait("b", timeout=300).state == "ready"
    assert embedded_hub.run_id("a") != embedded_hub.run_id("b")


class ExplodingModel(MeanModel):
    """Accepts its config and data, then fails inside the fit, in the worker process."""

    type_name = "exploding"

    def fit(self, data, progress):
        progress("fitting", 0.5)
        raise ValueError("the model exploded at iteration 3")


def test_failed_fit_is_reported_and_the_hub_goes_on(embedded_hub, daily):
    embedded_hub.register_experiment_type("exploding", ExplodingModel)
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0]})
    embedded_hub.create_experiment("bad", "exploding", {}, data=frame)
    with pytest.raises(TrainingFailed, match="exploded"):
        embedded_hub.wait("bad", timeout=120)
    status = embedded_hub.status("bad")
    assert status.state == "failed" and "ValueError: the model exploded at iteration 3" in status.error
    run_id = wait_for(lambda: embedded_hub.status("bad").run_id, 60, "the run id")
    wait_for(lambda: embedded_hub.tracking.get_run(run_id).status == "FAILED", 10, "the run to be FAILED")
    good = embedded_hub.train("bad", {})  # a failed experiment can be trained again (same type)
    assert good is embedded_hub.experiments["bad"]
    with pytest.raises(TrainingFailed):  # still the exploding type: it fails again, and says so
        embedded_hub.wait("bad", timeout=120)
