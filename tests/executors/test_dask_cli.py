"""Dask clusters started the way users start them, and the one the hub starts for itself.

* ``dask scheduler --host 127.0.0.1 --port 0 --scheduler-file F`` and two ``dask worker`` processes
  from the command line; the hub connects by address (``executor="dask"``, ``dask_address``), and
  its queue follows a third worker joining and leaving.
* ``executor="dask"`` with no address, from a plain script without a ``__main__`` guard: the hub
  starts a loopback cluster of its own that never runs the script again, and nothing of it is
  left running once the script exits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import SEED_CONFIG, stop_process_group, wait_for

from experimenthub import ExperimentHub

ADDRESS = re.compile(r"^tcp://127\.0\.0\.1:\d+$")


def dask_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dask")), *args]


def start_dask(workdir: Path, name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """A ``dask`` command line in its own process group, logging to a file of ``workdir``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with open(workdir / f"{name}.log", "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """A scheduler and two workers, each its own ``dask`` process on loopback; stopped after."""
    workdir = tmp_path_factory.mktemp("dask-cli")
    scheduler_file = workdir / "scheduler.json"
    processes = []

    def start(name: str, command: list[str]) -> None:
        processes.append(start_dask(workdir, name, command))

    start("scheduler", dask_command("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                    "--scheduler-file", str(scheduler_file)))
    wait_for(scheduler_file.exists, 60, "the scheduler file")
    address = json.loads(scheduler_file.read_text())["address"]
    for index in range(2):
        start(f"worker-{index}", dask_command("worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                              "--no-dashboard", "--name", f"cli-{index}"))
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=120)
    yield address
    for process in reversed(processes):
        stop_process_group(process)


def test_a_hub_trains_on_a_cluster_given_by_address(cli_cluster, tmp_path, daily):
    from distributed import Client

    with ExperimentHub(home=str(tmp_path / "home"), executor="dask", dask_address=cli_cluster) as hub:
        trainings = hub.health(max_age=0)["executor"]["details"]["trainings"]
        assert trainings["capacity"] == 2  # the cluster's worker threads: max_trainings was not set
        hub.create_experiment("sales", "time_series", SEED_CONFIG, data=daily)
        status = hub.wait("sales", timeout=300)
        assert status.state == "ready" and ADDRESS.match(status.executor)
        with Client(cli_cluster, set_as_default=False) as client:
            assert status.executor in client.scheduler_info()["workers"]
        health = hub.health()["executor"]
        assert health["healthy"] is True and health["details"]["workers"] == 2
    with Client(cli_cluster, set_as_default=False) as client:
        assert len(client.scheduler_info()["workers"]) == 2  # a cluster given by address stays up


def test_the_queue_follows_the_cluster_as_workers_join_and_leave(cli_cluster, tmp_path, daily):
    from distributed import Client

    def capacity(hub: ExperimentHub) -> int:
        return hub.health(max_age=0)["executor"]["details"]["trainings"]["capacity"]

    # two hubs given one client (a notebook cell run twice) and one connecting by address
    with Client(cli_cluster, set_as_default=False) as client, \
            ExperimentHub(home=str(tmp_path / "a"), dask_client=client) as first, \
            ExperimentHub(home=str(tmp_path / "b"), dask_client=client) as second, \
            ExperimentHub(home=str(tmp_path / "c"), executor="dask", dask_address=cli_cluster) as third:
        assert [capacity(hub) for hub in (first, second, third)] == [2, 2, 2]
        extra = start_dask(tmp_path, "worker-extra", dask_command(
            "worker", cli_cluster, "--host", "127.0.0.1", "--nthreads", "2", "--no-dashboard", "--name", "extra"))
        try:
            wait_for(lambda: [capacity(hub) for hub in (first, second, third)] == [4, 4, 4], 120,
                     "every queue to take the new worker's 2 threads")
            second.close()  # its share of the client's subscription goes; the first hub keeps following
        finally:
            stop_process_group(extra)
        wait_for(lambda: [capacity(first), capacity(third)] == [2, 2], 60,
                 "the queues to give the stopped worker's threads back")
    with ExperimentHub(home=str(tmp_path / "fixed"), executor="dask", dask_address=cli_cluster,
                       max_trainings=1) as hub:
        hub.create_experiment("sales", "time_series", SEED_CONFIG, data=daily)
        assert hub.wait("sales", timeout=300).state == "ready"  # connected and set up: it would follow by now
        assert hub.health(max_age=0)["executor"]["details"]["trainings"]["capacity"] == 1  # set by the user: kept


SCRIPT = """\
import json, os, psutil
from experimenthub import ExperimentHub, datasets

print("module level ran in", os.getpid(), flush=True)
config = {{"setup": {{"target": "value", "ds": "ds"}},
           "create_model": {{"model_type": "Prophet", "params": {{}}}}}}
hub = ExperimentHub(home={home!r}, executor="dask")
data = datasets.load("prophet_daily").rename(columns={{"y": "value"}})
hub.create_experiment("sales", "time_series", config, data=data)
status = hub.wait("sales", timeout=300)
trainings = hub.health(max_age=0)["executor"]["details"]["trainings"]
print(json.dumps({{"state": status.state, "executor": status.executor, "capacity": trainings["capacity"],
                  "started": [p.pid for p in psutil.Process().children(recursive=True)]}}), flush=True)
"""


def test_a_plain_script_gets_a_loopback_cluster_and_leaves_nothing_behind(tmp_path):
    script = tmp_path / "train.py"  # no `if __name__ == "__main__":` guard
    script.write_text(SCRIPT.format(home=str(tmp_path / "home")))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert sum(line.startswith("module level ran") for line in lines) == 1  # never imported again
    result = json.loads(lines[-1])
    assert result["state"] == "ready" and ADDRESS.match(result["executor"])
    assert result["capacity"] == os.cpu_count()  # one single-threaded worker per core
    assert len(result["started"]) >= 1 + 2 * os.cpu_count()  # scheduler, workers (and their worker servers)

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    wait_for(lambda: not any(alive(pid) for pid in result["started"]), 30, "every process of the script to end")
    logs = list((tmp_path / "home" / "dask").glob("cluster-*/*.log"))
    assert logs, "the cluster's processes log to files"
    print(f"script ran in {time.monotonic() - started:.1f} s")


KILLED_SCRIPT = """\
import json, psutil, time
from experimenthub import ExperimentHub, datasets

config = {{"setup": {{"target": "temp_f"}},
           "create_model": {{"model_type": "Prophet", "params": {{"mcmc_samples": 300}}}}}}
hub = ExperimentHub(home={home!r}, executor={executor!r})
hub.create_experiment("long", "time_series", config, data=datasets.load("seattle_temps_hourly_2010"))

def sampling():
    for process in psutil.Process().children(recursive=True):
        try:
            if "method=sample" in process.cmdline():
                return True
        except psutil.Error:
            pass
    return False

while not sampling():
    time.sleep(0.05)
time.sleep(2)  # well into the fit: a job left behind would run on for minutes
print(json.dumps([p.pid for p in psutil.Process().children(recursive=True)]), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_hub_killed_mid_fit_leaves_nothing_running(tmp_path, executor):
    """SIGKILL runs no clean-up in the hub: the local worker server sees its hub's socket close and
    kills its jobs; a loopback cluster's scheduler sees its lifeline close and shuts the cluster."""
    script = tmp_path / "train.py"
    script.write_text(KILLED_SCRIPT.format(home=str(tmp_path / "home"), executor=executor))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with open(tmp_path / "stderr.log", "wb") as stderr:
        process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   env=env, cwd=tmp_path, start_new_session=True)
    try:
        line = process.stdout.readline()
        assert line, (tmp_path / "stderr.log").read_text()[-3000:]
        started = json.loads(line)
    finally:
        process.kill()  # the hub's process only, not its group: the rest must end by itself
        process.wait()

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    try:
        wait_for(lambda: not any(alive(pid) for pid in started), 60, "every process the hub started to end")
    finally:
        for pid in started:  # a failure must not leave a cluster running either
            if alive(pid):
                psutil.Process(pid).kill()
