"""Training jobs: a stop really stops the fit (no process left), experiments train in parallel, and a
worker is kept for the next job only after a success."""

from __future__ import annotations

import itertools
import os
import threading
import time

import pandas as pd
import psutil
import pytest
from helpers import wait_for
from test_settings_and_registry import MeanModel

from experimenthub import TrainingFailed, jobs
from experimenthub.jobs import JobCancelled, JobError, WorkerJob

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


# -- workers kept between jobs (the functions below run in a worker) ---------------------------------
def worker_pid(report):
    return os.getpid()


def worker_fails(report):
    raise ValueError("no such luck")


def worker_waits(report):
    report("progress", ("waiting", 0.5))
    time.sleep(120)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def run_job(fn) -> object:
    return WorkerJob(fn, (), lambda kind, payload: None).run()


def test_a_worker_runs_the_next_job_after_a_success_and_never_after_a_failure():
    first = run_job(worker_pid)
    assert first != os.getpid()
    assert run_job(worker_pid) == first  # kept: no fork for the second job
    with pytest.raises(JobError, match="no such luck"):
        run_job(worker_fails)  # runs in the kept worker, which then goes
    wait_for(lambda: gone(first), 10, "the worker of the failed job to exit")
    assert run_job(worker_pid) not in (first, os.getpid())


def worker_takes(payload, report):
    return os.getpid()


def test_a_job_the_worker_cannot_unpickle_fails_with_the_reason(tmp_path, monkeypatch):
    jobs.warm_up()  # the worker server keeps the import path it started with: without tmp_path
    (tmp_path / "hub_only_module.py").write_text("class Payload:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import hub_only_module

    with pytest.raises(JobError, match="ModuleNotFoundError.*hub_only_module"):
        WorkerJob(worker_takes, (hub_only_module.Payload(),), lambda kind, payload: None).run()
    assert run_job(worker_pid) != os.getpid()  # and the next job runs


def test_a_kept_worker_that_died_while_idle_is_replaced_for_the_next_job():
    pid = run_job(worker_pid)
    psutil.Process(pid).kill()  # e.g. the kernel's out-of-memory killer
    wait_for(lambda: gone(pid), 10, "the kept worker to die")
    assert run_job(worker_pid) not in (pid, os.getpid())  # no WorkerDied: a new worker took the job


def test_a_stopped_job_takes_its_worker_with_it():
    pid = run_job(worker_pid)
    started = threading.Event()
    job = WorkerJob(worker_waits, (), lambda kind, payload: started.set())
    outcome: list[BaseException] = []
    thread = threading.Thread(target=lambda: outcome.append(pytest.raises(JobCancelled, job.run).value))
    thread.start()
    assert started.wait(60)
    job.cancel()
    thread.join(10)
    assert outcome and isinstance(outcome[0], JobCancelled)
    wait_for(lambda: gone(pid), 10, "the stopped job's worker to be killed")
    assert run_job(worker_pid) != pid


def test_kept_workers_exit_when_idle_and_after_so_many_jobs(monkeypatch):
    monkeypatch.setattr(jobs, "MAX_JOBS_PER_WORKER", 3)
    pids = [run_job(worker_pid) for _ in range(7)]  # the first may go to a worker kept by an earlier test
    runs = [len(list(same)) for _, same in itertools.groupby(pids)]
    assert max(runs) == 3 and len(set(pids)) == len(runs)  # a new worker does 3 jobs, then another takes over
    wait_for(lambda: gone(pids[0]), 10, "the worker that ran its last job to exit")
    monkeypatch.setattr(jobs, "IDLE_SECONDS", 0.5)
    idle = run_job(worker_pid)
    wait_for(lambda: gone(idle), 10, "an idle worker to exit")
