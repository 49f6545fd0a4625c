"""Many experiments at once, side by side in one run, against what a user would write by hand.

    .venv/bin/python benchmarks/bench_many.py [--count 200] [--rows 365] [--skip-dask]

One long table of COUNT daily series (ROWS days each) is trained as COUNT Prophet models by:

* bare ``Prophet().fit()`` + ``predict()`` in a plain loop (no tracking);
* a ``concurrent.futures.ProcessPoolExecutor`` over the cores whose task fits, predicts and logs
  the model (``mlflow.prophet.log_model``) with its params and metrics as an MLflow run (an
  embedded sqlite store);
* the hub on its local executor (``create_experiments(..., by=...)``, then ``wait``), with its
  figures deferred to their first request (the default) and built during training (as before);
* the same fit-and-log task by hand on a 2-worker Dask ``LocalCluster`` (``client.map``);
* the hub on a 2-worker Dask cluster (``executor="dask"``: a loopback cluster of its own).

The clock stops when every model is ready, and when every run is logged. Peak memory is the
resident memory of the whole process tree (this process and every child), sampled every 0.2 s.
Then REST latency (p50/p99 of ``/health`` and ``/experiments``) while the hub trains them, against
a bare FastAPI app serving the same payloads from the same process.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import table
from bench_api import bare_app, load, serve_bare

CONFIG = {"setup": {"target": "y"}, "create_model": {"model_type": "Prophet", "params": {}}}


def long_table(count: int, rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    stamps = pd.date_range("2023-01-01", periods=rows, freq="D")
    week = np.sin(2 * np.pi * np.arange(rows) / 7)
    return pd.concat([pd.DataFrame({"ds": stamps, "y": 50 + 5 * week + rng.normal(0, 1, rows), "series": f"s{i}"})
                      for i in range(count)], ignore_index=True)


class PeakMemory:
    """Peak resident memory of this process and all its descendants, sampled in a thread."""

    def __init__(self, every: float = 0.2) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)

    def _sample(self, every: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def fit_one(frame):
    import logging

    from prophet import Prophet

    logging.getLogger("cmdstanpy").disabled = True
    model = Prophet().fit(frame)
    forecast = model.predict(model.make_future_dataframe(periods=30))
    return model, float(abs(forecast["yhat"].iloc[: len(frame)] - frame["y"]).mean())


def fit_and_log(args):
    """What a careful user writes: fit, then an MLflow run with the params, the metric and the model
    (its requirements given, so MLflow does not infer them in a subprocess), retried while sqlite is
    locked by the other processes."""
    name, frame, uri = args
    import mlflow
    import mlflow.prophet

    model, mae = fit_one(frame)
    mlflow.set_tracking_uri(uri)
    for attempt in range(50):
        try:
            experiment = mlflow.set_experiment(name)
            with mlflow.start_run(experiment_id=experiment.experiment_id):
                mlflow.log_param("model_type", "Prophet")
                mlflow.log_metric("mae", mae)
                mlflow.prophet.log_model(model, name="model", pip_requirements=["prophet"])
            return mae
        except Exception:
            time.sleep(0.1 * (attempt + 1))
    raise RuntimeError(f"could not log {name}")


def bare_loop(groups) -> tuple[float, float, int]:
    with PeakMemory() as memory:
        start = time.perf_counter()
        for frame in groups.values():
            fit_one(frame)
        elapsed = time.perf_counter() - start
    return elapsed, elapsed, memory.peak


def process_pool(groups, home: str) -> tuple[float, float, int]:
    uri = f"sqlite:///{home}/pool.db"
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments()  # the schema exists before the workers race
    with PeakMemory() as memory:
        start = time.perf_counter()
        with concurrent.futures.ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(fit_and_log, [(name, frame, uri) for name, frame in groups.items()]))
        elapsed = time.perf_counter() - start
    return elapsed, elapsed, memory.peak


def warm_worker(frame) -> None:
    fit_one(frame)


def dask_map(groups, home: str) -> tuple[float, float, int]:
    """What a Dask user writes by hand: the same fit-and-log task, ``client.map`` over a 2-worker
    ``LocalCluster`` (one thread each), the workers warmed up (imports, the first fit) off the clock
    as the hub's are."""
    from distributed import Client, LocalCluster
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{home}/dask.db"
    MlflowClient(tracking_uri=uri).search_experiments()
    first = next(iter(groups.values()))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(warm_worker, first)  # every worker has imported Prophet and fitted once
        with PeakMemory() as memory:
            start = time.perf_counter()
            client.gather(client.map(fit_and_log, [(name, frame, uri) for name, frame in groups.items()]))
            elapsed = time.perf_counter() - start
    return elapsed, elapsed, memory.peak


def hub_run(data, home: str, rest_seconds: float, **settings) -> tuple[float, float, int, list[list[object]]]:
    from experimenthub import ExperimentHub
    from experimenthub.jobs import stop_worker_server

    rest_rows: list[list[object]] = []
    with ExperimentHub(home=home, **settings) as hub:
        warm = long_table(1, 60).drop(columns="series")  # start-up (workers, MLflow schema) off the clock
        hub.create_experiment("warm-up", "time_series", CONFIG, data=warm)
        hub.wait("warm-up", tracked=True)
        with PeakMemory() as memory:
            start = time.perf_counter()
            made = hub.create_experiments("time_series", CONFIG, data, by="series")
            names = [e.name for e in made]
            if rest_seconds:
                rest_rows = rest_latency(hub, rest_seconds)
            statuses = hub.wait(names, progress=False)
            ready = time.perf_counter() - start
            hub.wait(names, tracked=True, progress=False)
            logged = time.perf_counter() - start
        failed = [n for n, s in statuses.items() if s.state != "ready"]
        assert not failed, f"{len(failed)} not ready: {statuses[failed[0]].error}"
    # the worker server (and the workers it keeps) outlives a hub, for the next one in this process:
    # stopped here, so that the next row's peak memory is its own
    stop_worker_server()
    return ready, logged, memory.peak, rest_rows


def rest_latency(hub, seconds: float) -> list[list[object]]:
    server = hub.serve(port=0)
    bare = serve_bare(bare_app(hub.health(), {n: [[], []] for n in hub.experiments}, "{}"))
    paths = ["/health", "/experiments"]
    ours = load([server.url + p for p in paths], seconds)
    theirs = load([bare + p for p in paths], seconds)
    return [[p, ours[server.url + p][0], ours[server.url + p][1], theirs[bare + p][0], theirs[bare + p][1],
             ours[server.url + p][1] / theirs[bare + p][1]] for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rows", type=int, default=365)
    parser.add_argument("--rest-seconds", type=float, default=10.0)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    data = long_table(args.count, args.rows)
    groups = {name: part.drop(columns="series").reset_index(drop=True) for name, part in data.groupby("series")}
    rows, rest_rows = [], []
    with tempfile.TemporaryDirectory() as home:
        fit_one(next(iter(groups.values())))  # warm the imports of this process
        for label, run in (("bare Prophet loop", lambda: bare_loop(groups)),
                           ("ProcessPool + MLflow runs", lambda: process_pool(groups, home))):
            ready, logged, peak = run()
            rows.append([label, ready, logged, args.count / ready, peak / 2**30])
        ready, logged, peak, _ = hub_run(data, f"{home}/local", 0)
        rows.append(["hub, local executor", ready, logged, args.count / ready, peak / 2**30])
        if args.rest_seconds:  # a pass of its own: the load generator would slow the one measured above
            rest_rows = hub_run(data, f"{home}/rest", args.rest_seconds)[3]
        ready, logged, peak, _ = hub_run(data, f"{home}/eager", 0, defer_figures=False)
        rows.append(["hub, local, figures built in training", ready, logged, args.count / ready, peak / 2**30])
        if not args.skip_dask:
            ready, logged, peak = dask_map(groups, home)
            rows.append(["Dask client.map + MLflow runs, 2 workers", ready, logged, args.count / ready, peak / 2**30])
            ready, logged, peak, _ = hub_run(data, f"{home}/dask", 0, executor="dask")
            rows.append(["hub, 2-worker Dask cluster", ready, logged, args.count / ready, peak / 2**30])
    pool_rate = rows[1][3]
    print(f"{args.count} Prophet experiments, {args.rows} daily rows each, {os.cpu_count()} cores")
    print(table(["approach", "ready (s)", "logged (s)", "models/s", "peak RSS (GiB)", "vs pool"],
                [[*r, r[3] / pool_rate] for r in rows]))
    if rest_rows:
        print()
        print(f"REST latency while the hub trains them (ms), {args.rest_seconds:.0f} s per side")
        print(table(["path", "ours p50", "ours p99", "bare p50", "bare p99", "p99 ratio"], rest_rows))


if __name__ == "__main__":
    main()
