"""One contract, two executors: the local worker server and a Dask cluster (given as ``dask_client``).

What the hub promises whatever runs the fit: a training ends ``ready`` with its progress events,
``status.executor`` says where it ran, predictions are the local executor's, a stop kills the fit's
CmdStan process where it runs, and a worker killed mid-fit never leaves the experiment hanging in
``training``. The Dask cluster is one ``LocalCluster`` of two single-threaded worker processes
for the module; it lets Dask run a task again once after its worker died (``allowed_failures=1``),
so that both outcomes of a worker's death, run elsewhere and failed, are seen.
"""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
import pandas as pd
import psutil
import pytest
from helpers import SEED_CONFIG, wait_for
from test_settings_and_registry import MeanModel

from experimenthub import ExperimentHub, TrainingFailed
from experimenthub.jobs import warm_up

LONG = {"setup": {"target": "temp_f"},
        "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 300}}}
# a few seconds of sampling on 30 days of hours: long enough for the test to see its CmdStan and kill
# the worker mid-fit (20 samples took 0.2 s on a fast machine, and the poll could miss it entirely)
SHORT_MCMC = {"setup": {"target": "temp_f"},
              "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 100}}}
ADDRESS = re.compile(r"^tcp://127\.0\.0\.1:\d+$")


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                           dashboard_address=None, scheduler_kwargs={"allowed_failures": 1})
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(params=["local", "dask"])
def kind(request):
    return request.param


@pytest.fixture
def hub(request, tmp_path, kind):
    client = None
    if kind == "dask":
        client = request.getfixturevalue("dask_client")
        client.wait_for_workers(2, timeout=120)  # a test before may have killed one (its nanny restarts it)
        client.run(warm_up)  # worker servers ready: no rehearsal fit runs during the test
    with ExperimentHub(home=str(tmp_path / "home"), dask_client=client) as hub:
        yield hub


@pytest.fixture(scope="module")
def local_forecast(tmp_path_factory, daily):
    with ExperimentHub(home=str(tmp_path_factory.mktemp("reference") / "home")) as hub:
        hub.create_experiment("reference", "time_series", SEED_CONFIG, data=daily)
        hub.wait("reference", timeout=300)
        return hub.predict("reference", daily)


def stan_processes() -> list[psutil.Process]:
    """CmdStan processes sampling (MCMC) for this test session: the local worker server and the
    Dask workers are its children, while other sessions on the machine may be fitting too, and a
    worker server warming up rehearses a (MAP) fit."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any("prophet_model.bin" in part for part in cmdline) and "method=sample" in cmdline and \
                os.getpid() in ancestors(process):
            found.append(process)
    return found


def gone(processes: list[psutil.Process]) -> bool:
    def dead(process: psutil.Process) -> bool:
        try:
            return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    return all(dead(p) for p in processes)


def ancestors(process: psutil.Process) -> set[int]:
    try:
        return {parent.pid for parent in process.parents()}
    except psutil.NoSuchProcess:
        return set()


def worker_pids(client) -> dict[str, int]:
    return client.run(os.getpid)


def new_fit(before: set[int], hub: ExperimentHub | None = None, name: str = "") -> list[psutil.Process]:
    """The CmdStan processes of a fit started since ``before`` (with ``hub``: failing at once, with
    the experiment's status, if it ends before one is seen)."""
    def started() -> list[psutil.Process]:
        if hub is not None and hub.status(name).state != "training":
            raise AssertionError(f"{name!r} ended before its CmdStan was seen: {hub.status(name)}")
        return [p for p in stan_processes() if p.pid not in before]
    return wait_for(started, 120, "CmdStan to run")


def test_trains_to_ready_with_progress_and_says_where(hub, kind, daily, request):
    events = []
    hub.subscribe(events.append, ["progress"])
    hub.create_experiment("sales", "time_series", SEED_CONFIG, data=daily)
    status = hub.wait("sales", timeout=300)
    assert status.state == "ready" and status.progress == 1.0 and status.run_id
    stages = [e.data["stage"] for e in events if e.name == "sales"]
    assert {"starting", "fitting", "finishing"} <= set(stages)
    if kind == "local":
        assert status.executor == "local"
    else:
        assert ADDRESS.match(status.executor), status.executor
        assert status.executor in worker_pids(request.getfixturevalue("dask_client"))
    assert hub.health()["executor"]["healthy"] is True


def test_predictions_equal_the_local_executors(hub, daily, local_forecast):
    hub.create_experiment("sales", "time_series", SEED_CONFIG, data=daily)
    hub.wait("sales", timeout=300)
    ours = hub.predict("sales", daily)
    np.testing.assert_allclose(ours["yhat"], local_forecast["yhat"], rtol=1e-9, atol=1e-9)
    assert list(ours.columns) == list(local_forecast.columns)


class ExplodingModel(MeanModel):
    type_name = "exploding"

    def fit(self, data, progress):
        progress("fitting", 0.5)
        raise ValueError("the model exploded at iteration 3")


class ThreadMean(MeanModel):
    """A type that asks to run in a thread (as types defined in a notebook's __main__ do)."""

    type_name = "thread_mean"
    isolation = "thread"


def test_a_failing_fit_fails_with_its_error(hub):
    hub.register_experiment_type("exploding", ExplodingModel)
    hub.create_experiment("bad", "exploding", {}, data=pd.DataFrame({"y": [1.0, 2.0, 3.0]}))
    with pytest.raises(TrainingFailed, match="exploded"):
        hub.wait("bad", timeout=120)
    assert "ValueError: the model exploded at iteration 3" in hub.status("bad").error


def test_a_type_run_in_a_thread_trains(hub, kind):
    hub.register_experiment_type("thread_mean", ThreadMean)
    hub.create_experiment("mean", "thread_mean", {}, data=pd.DataFrame({"y": [1.0, 2.0, 6.0]}))
    status = hub.wait("mean", timeout=120)
    assert status.state == "ready" and status.metrics["mean"] == 3.0
    assert status.executor == "local" if kind == "local" else ADDRESS.match(status.executor)


def test_stop_kills_the_fit_where_it_runs(hub, kind, hourly, request):
    before = {p.pid for p in stan_processes()}
    hub.create_experiment("long", "time_series", LONG, data=hourly)
    running = new_fit(before)
    status = hub.status("long")
    assert status.state == "training"
    if kind == "dask":  # CmdStan runs under the Dask worker named by status.executor
        pids = worker_pids(request.getfixturevalue("dask_client"))
        assert any(pids[status.executor] in ancestors(p) for p in running), (pids, status.executor,
                                                                            [(p.pid, ancestors(p)) for p in running])

    assert hub.stop_training("long") is True
    assert hub.status("long").state == "stopped"
    wait_for(lambda: gone(running), 10, "the CmdStan processes to be gone")
    run_id = wait_for(lambda: hub.status("long").run_id, 60, "the run id")
    wait_for(lambda: hub.tracking.get_run(run_id).status == "KILLED", 30, "the run to be KILLED")


def test_a_worker_killed_mid_fit_never_leaves_it_training(hub, kind, hourly, request):
    """Local: the job's process dies -> failed. Dask: the worker dies -> Dask runs the job on
    another worker; that one dies too -> failed, naming it. Every killed fit's CmdStan goes too."""
    before = {p.pid for p in stan_processes()}
    hub.create_experiment("doomed", "time_series", LONG, data=hourly)
    running = new_fit(before)
    if kind == "local":
        job = next(p for p in running[0].parents() if p.pid == os.getpgid(p.pid))  # the job's group leader
        job.send_signal(signal.SIGKILL)
        with pytest.raises(TrainingFailed, match="WorkerDied"):
            hub.wait("doomed", timeout=60)
        wait_for(lambda: gone(running), 10, "the killed job's CmdStan to be gone")
        return

    client = request.getfixturevalue("dask_client")
    first = hub.status("doomed").executor
    os.kill(worker_pids(client)[first], signal.SIGKILL)
    wait_for(lambda: gone(running), 30, "the dead worker's CmdStan to be gone")
    # Dask runs it again elsewhere: a new worker reports, a new fit starts
    second = wait_for(lambda: (w := hub.status("doomed").executor) != first and w, 120, "the job to run again")
    assert hub.status("doomed").state == "training"
    running = new_fit(before | {p.pid for p in running})
    killed_at = time.monotonic()
    os.kill(worker_pids(client)[second], signal.SIGKILL)
    with pytest.raises(TrainingFailed) as failed:
        hub.wait("doomed", timeout=60)
    took = time.monotonic() - killed_at
    assert "WorkerDied" in str(failed.value) and second in str(failed.value)
    assert hub.status("doomed").state == "failed"
    wait_for(lambda: gone(running), 30, "the dead worker's CmdStan to be gone")
    print(f"failed {took:.2f} s after its second worker was killed")


@pytest.mark.parametrize("kind", ["dask"])  # a local job has no other worker to run again on
def test_a_job_runs_again_when_its_worker_dies_and_ends_ready(hub, kind, hourly, request):
    client = request.getfixturevalue("dask_client")
    before = {p.pid for p in stan_processes()}
    hub.create_experiment("survivor", "time_series", SHORT_MCMC, data=hourly.iloc[: 24 * 30])
    new_fit(before, hub, "survivor")
    first = hub.status("survivor").executor
    os.kill(worker_pids(client)[first], signal.SIGKILL)
    status = hub.wait("survivor", timeout=300)
    assert status.state == "ready" and status.executor != first and ADDRESS.match(status.executor)


@pytest.mark.parametrize("kind", ["dask"])  # a local job's hub is the process itself
def test_a_job_whose_hub_went_away_ends_itself(kind, tmp_path, hourly, request):
    from distributed import Client

    cluster_client = request.getfixturevalue("dask_client")
    cluster_client.wait_for_workers(2, timeout=120)
    cluster_client.run(warm_up)
    client = Client(cluster_client.scheduler.address, set_as_default=False)
    hub = ExperimentHub(home=str(tmp_path / "home"), dask_client=client)
    try:
        before = {p.pid for p in stan_processes()}
        hub.create_experiment("orphan", "time_series", LONG, data=hourly)
        running = new_fit(before)
        client.close()  # the hub's connection is gone: the scheduler cancels its task on the worker
        wait_for(lambda: gone(running), 10, "the orphaned fit's CmdStan to be gone")
        assert hub.wait("orphan", timeout=60, raise_on_failure=False).state == "failed"
    finally:
        hub.close()
