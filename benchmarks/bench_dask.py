"""Memory per Voila-like visitor: a worker server in every kernel, or one shared Dask cluster.

    .venv/bin/python benchmarks/bench_dask.py [--visitors 3] [--stops 3]

Under Voila every visitor gets a kernel. With the local executor each kernel's hub starts its own
worker server (pandas, Prophet and scikit-learn preloaded); with ``EXPERIMENTHUB_EXECUTOR=dask``
and ``EXPERIMENTHUB_DASK_ADDRESS`` every kernel sends its trainings to one shared cluster instead.
Here N kernel-like processes run at once, each a hub that trained one Prophet model (its MLflow
run logged) and then idles, as a visitor's kernel would; for each, the resident memory of the
process and of everything it started (psutil, children included) is summed, as RSS (shared pages
counted in every process) and PSS (shared pages split between the processes sharing them): just
after the training, while the worker that ran it is kept for a next job, and once idle (that
worker gone after ``experimenthub.jobs.IDLE_SECONDS``).
The shared cluster (``dask scheduler`` + 2 ``dask worker`` CLI processes on loopback, with their
worker servers) is measured once and shown whole and per visitor.

Also measured on that cluster: ``stop_training()`` during a long MCMC fit on a Dask worker until the
fit's CmdStan processes are gone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, table, time_stop

from experimenthub.jobs import IDLE_SECONDS

VISITOR = """\
import json, sys
from experimenthub import ExperimentHub, datasets
hub = ExperimentHub(home=sys.argv[1], **json.loads(sys.argv[2]))
data = datasets.load("prophet_daily")
hub.create_experiment("visit", "time_series", {"setup": {"target": "y"}}, data=data)
status = hub.wait("visit", timeout=600, tracked=True)
print(json.dumps({"state": status.state, "executor": status.executor}), flush=True)
sys.stdin.read()  # idle like a visitor's kernel until told to leave
hub.close()
"""

MiB = 1024 * 1024


def tree_memory(pid: int) -> tuple[float, float, int]:
    """(RSS MiB, PSS MiB, processes) of ``pid`` and all its descendants."""
    root = psutil.Process(pid)
    rss = pss = 0.0
    processes = [root, *root.children(recursive=True)]
    for process in processes:
        try:
            info = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss / MiB
        pss += getattr(info, "pss", info.rss) / MiB
    return rss, pss, len(processes)


def environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


Memory = list[tuple[float, float, int]]


def visitors(count: int, settings: dict[str, str], workdir: Path) -> tuple[Memory, Memory]:
    """Start ``count`` visitors at once, wait until each trained, measure them just after and once
    idle, let them go."""
    script = workdir / "visitor.py"
    script.write_text(VISITOR)
    started = [subprocess.Popen([sys.executable, str(script), str(workdir / f"home-{i}"), json.dumps(settings)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment(), text=True)
               for i in range(count)]
    try:
        for process in started:
            line = process.stdout.readline() if process.stdout else ""
            if not line or json.loads(line)["state"] != "ready":
                raise RuntimeError(f"a visitor did not train: {line!r}")
        time.sleep(2)  # settle: write-behind threads done, allocator caches returned
        trained = [tree_memory(process.pid) for process in started]
        time.sleep(IDLE_SECONDS)  # idle: the worker kept for a next job has exited
        return trained, [tree_memory(process.pid) for process in started]
    finally:
        for process in started:
            if process.stdin:
                process.stdin.close()
        for process in started:
            process.wait(timeout=120)


class SharedCluster:
    """``dask scheduler`` and two ``dask worker`` processes, as an operator would start them."""

    def __init__(self, workdir: Path) -> None:
        dask = str(Path(sys.executable).with_name("dask"))
        scheduler_file = workdir / "scheduler.json"
        self.log = open(workdir / "cluster.log", "wb")  # noqa: SIM115 - open while the cluster runs
        start = dict(stdout=self.log, stderr=subprocess.STDOUT, env=environment(), start_new_session=True)
        self.processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                            "--no-dashboard", "--scheduler-file", str(scheduler_file)], **start)]
        while not scheduler_file.exists():
            time.sleep(0.05)
        self.address = json.loads(scheduler_file.read_text())["address"]
        self.processes += [subprocess.Popen([dask, "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                                             "--no-dashboard"], **start) for _ in range(2)]
        from distributed import Client

        from experimenthub.jobs import warm_up

        with Client(self.address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            client.run(warm_up)  # the worker servers a visitor's first training would start

    def memory(self) -> tuple[float, float, int]:
        parts = [tree_memory(process.pid) for process in self.processes]
        return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)

    def close(self) -> None:
        import signal

        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)
        self.log.close()


def stop_latency(address: str, home: str, repeats: int) -> tuple[float, float]:
    """Median s of ``stop_training()`` itself and until the fit's CmdStan processes are gone."""
    from experimenthub import ExperimentHub, datasets

    def stan() -> list[psutil.Process]:
        mine = {p.pid for p in psutil.Process().children(recursive=True)}
        return [p for p in psutil.process_iter(["cmdline"]) if p.pid in mine
                and "method=sample" in (p.info["cmdline"] or [])]

    config = {"setup": {"target": "temp_f"}, "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 300}}}
    data = datasets.load("seattle_temps_hourly_2010")
    calls, gone = [], []
    with ExperimentHub(home=home, executor="dask", dask_address=address) as hub:
        for i in range(repeats):
            hub.create_experiment(f"stop{i}", "time_series", config, data=data)
            call, ended = time_stop(hub, f"stop{i}", stan, timeout=300)
            calls.append(call)
            gone.append(ended)
    return median(calls), median(gone)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visitors", type=int, default=3)
    parser.add_argument("--stops", type=int, default=3)
    args = parser.parse_args()
    n = args.visitors
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        (workdir / "local").mkdir()
        local = visitors(n, {"executor": "local"}, workdir / "local")
        cluster = SharedCluster(workdir)
        try:
            (workdir / "dask").mkdir()
            shared = visitors(n, {"executor": "dask", "dask_address": cluster.address}, workdir / "dask")
            cluster_rss, cluster_pss, cluster_processes = cluster.memory()
            stop_call, stop_gone = stop_latency(cluster.address, str(workdir / "stop"), args.stops)
        finally:
            cluster.close()

    def row(label: str, measured: Memory, extra: tuple[float, float] = (0.0, 0.0)) -> list:
        rss, pss = median([m[0] for m in measured]), median([m[1] for m in measured])
        return [label, measured[0][2], rss, pss, rss + extra[0], pss + extra[1]]

    per_visitor = (cluster_rss / n, cluster_pss / n)
    print(f"{n} visitors at once, each a hub that trained Prophet on 510 daily rows; medians per visitor (MiB)")
    print(table(["executor", "processes", "RSS", "PSS", f"RSS + cluster/{n}", f"PSS + cluster/{n}"], [
        row("local: a worker server per kernel, just trained (its worker kept)", local[0]),
        row(f"  idle ({IDLE_SECONDS:.0f} s later: the kept worker gone)", local[1]),
        row("dask: one shared cluster (dask_address), just trained", shared[0], per_visitor),
        row("  idle", shared[1], per_visitor),
        ["  the shared cluster itself (scheduler, 2 workers, their worker servers)", cluster_processes,
         cluster_rss, cluster_pss, "", ""],
    ]))
    print()
    print(table(["stop on a Dask worker (long MCMC fit)", "median s"], [
        ["stop_training() call", stop_call],
        ["  stop_training() to the fit's CmdStan processes gone", stop_gone],
    ]))


if __name__ == "__main__":
    main()
