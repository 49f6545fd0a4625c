"""Hub overhead, side by side with the bare libraries doing the same work, in one run.

    .venv/bin/python benchmarks/bench_hub.py [--repeats 5]

Rows:
* Prophet, 510 daily rows (Prophet's own test data) and 8,759 hourly rows: the hub's
  ``create_experiment`` until ``ready`` (and until its MLflow run is fully logged) against bare
  ``Prophet().fit()`` + ``predict()`` over history and horizon + the same figures (model and EDA).
  The hub defers its figures to their first request by default; a second hub with
  ``defer_figures=False`` does exactly the bare work (figures built during training).
* PCA fault detection on TEP (500 x 52): the hub against the same experiment class used directly
  (fit with its out-of-fold limits + figures), and a minimal bare scikit-learn pipeline.
* ``import experimenthub`` and ``ExperimentHub()`` (fresh interpreters), and stop latency during a
  long Prophet fit (``stop_training`` call to the CmdStan process gone).

Medians over repeats; machines here are noisy, so read ratios, not single numbers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, table, time_stop, timed


def bare_prophet(data, params, horizon, freq):
    from prophet import Prophet

    from experimenthub.experiments import eda, timeseries_figures

    frame = data.rename(columns={data.columns[1]: "y"})
    model = Prophet(**params).fit(frame)
    future = model.make_future_dataframe(periods=horizon, freq=freq)
    forecast = model.predict(future)
    forecast["y"] = list(frame["y"]) + [float("nan")] * horizon
    forecast["anomaly"] = (forecast["y"] < forecast["yhat_lower"]) | (forecast["y"] > forecast["yhat_upper"])
    config = {"setup": {"target": "y"}}
    figures = timeseries_figures.build(model, forecast, None, config)
    figures.update(eda.standard_figures(frame, ds="ds", columns=["y"]))
    return [f.to_json() for f in figures.values()]


def hub_run(hub, name, kind, config, data):
    start = time.perf_counter()
    hub.create_experiment(name, kind, config, data=data)
    hub.wait(name, timeout=600)
    ready = time.perf_counter() - start
    hub.wait(name, timeout=600, tracked=True)
    return ready, time.perf_counter() - start


def interleaved(repeats, bare, hub):
    """Alternate bare and hub runs so that machine noise hits both alike."""
    bare_times, ready_times, logged_times = [], [], []
    for i in range(repeats):
        bare_times.append(timed(bare))
        ready, logged = hub(i)
        ready_times.append(ready)
        logged_times.append(logged)
    return median(bare_times), median(ready_times), median(logged_times)


def fresh_interpreter(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return median(times)


def stop_latency(hub, data, repeats):
    import psutil

    def stan():
        return [p for p in psutil.process_iter(["cmdline"]) if any("prophet_model.bin" in c
                                                                    for c in p.info["cmdline"] or [])]

    config = {"setup": {"target": "temp_f"}, "create_model": {"model_type": "Prophet",
                                                               "params": {"mcmc_samples": 300}}}
    calls, gone = [], []
    for i in range(repeats):
        name = f"stop{i}"
        hub.create_experiment(name, "time_series", config, data=data)
        call, ended = time_stop(hub, name, stan)
        calls.append(call)
        gone.append(ended)
    return median(calls), median(gone)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import logging

    logging.getLogger("cmdstanpy").disabled = True
    from experimenthub import ExperimentHub, datasets
    from experimenthub.experiments.fault_detection import FaultDetectionExperiment

    rows = []
    with tempfile.TemporaryDirectory() as home, ExperimentHub(home=home) as hub, \
            ExperimentHub(home=f"{home}/eager", defer_figures=False) as eager:
        time.sleep(3)  # let the hubs' warm-up (worker server, MLflow schema) finish, as in a notebook
        daily = datasets.load("prophet_daily")
        hourly = datasets.load("seattle_temps_hourly_2010")
        for label, data, target, horizon, freq in (("Prophet, 510 daily rows", daily, "y", 30, "D"),
                                                   ("Prophet, 8,759 hourly rows", hourly, "temp_f", 48, "h")):
            config = {"setup": {"target": target}, "create_model": {"model_type": "Prophet", "params": {}},
                      "forecast": {"horizon": horizon}}
            bare, ready, logged = interleaved(
                args.repeats, lambda d=data, h=horizon, f=freq: bare_prophet(d, {}, h, f),
                lambda i, c=config, d=data, lab=label: hub_run(hub, f"ts{len(d)}_{i}", "time_series", c, d))
            rows.append([label, bare, ready, ready / bare, logged, logged / bare])
            bare, ready, logged = interleaved(  # the same work as bare: figures built during training
                args.repeats, lambda d=data, h=horizon, f=freq: bare_prophet(d, {}, h, f),
                lambda i, c=config, d=data, lab=label: hub_run(eager, f"ts{len(d)}_{i}", "time_series", c, d))
            rows.append(["  figures built in training (defer_figures=False)", bare, ready, ready / bare, logged,
                         logged / bare])

        train = datasets.load("tep_normal_train")
        config = {"setup": {"ds": "ds"}, "create_model": {"model_type": "PCA", "params": {}}}

        def direct():
            experiment = FaultDetectionExperiment(config)
            frame = experiment.validate_data(train)
            evaluation = experiment.fit(frame, lambda *_: None)
            figures = {**experiment.figures(frame, evaluation, None), **experiment.eda_figures(frame)}
            return [f.to_json() for f in figures.values()]

        bare, ready, logged = interleaved(args.repeats, direct,
                                          lambda i: hub_run(hub, f"pca_{i}", "fault_detection", config, train))
        rows.append(["PCA on TEP 500x52 (vs the class directly)", bare, ready, ready / bare, logged, logged / bare])

        def sklearn_only():
            from sklearn.decomposition import PCA
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            features = train.drop(columns="ds")
            pipeline = make_pipeline(StandardScaler(), PCA(0.9)).fit(features)
            return pipeline.transform(features)

        plain = median([timed(sklearn_only) for _ in range(args.repeats)])
        rows.append(["  bare sklearn StandardScaler+PCA fit/transform only", plain, ready, ready / plain,
                     logged, logged / plain])
        stop_call, stop_gone = stop_latency(hub, hourly, max(2, args.repeats // 2))

    print(table(["work", "bare s", "hub ready s", "ratio", "hub logged s", "ratio logged"], rows))
    print()
    import_time = fresh_interpreter(
        "import time; t = time.perf_counter(); import experimenthub; print(time.perf_counter() - t)", args.repeats)
    mlflow_import = fresh_interpreter(
        "import time; t = time.perf_counter(); import mlflow; print(time.perf_counter() - t)", args.repeats)
    construct = fresh_interpreter(
        "import tempfile, time; from experimenthub import ExperimentHub; d = tempfile.mkdtemp(); "
        "t = time.perf_counter(); ExperimentHub(home=d); print(time.perf_counter() - t)", args.repeats)
    print(table(["measure", "median s"], [
        ["import experimenthub (fresh interpreter)", import_time],
        ["  for comparison: import mlflow", mlflow_import],
        ["ExperimentHub() on embedded defaults", construct],
        ["stop_training() call during a long Prophet fit", stop_call],
        ["  stop_training() to the CmdStan process gone", stop_gone],
    ]))


if __name__ == "__main__":
    main()
