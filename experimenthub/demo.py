"""The main job on embedded defaults: train both experiment types on shipped real data, then say
where everything is (until the Voila dashboard becomes the main job)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import datasets
from .hub import Hub

if TYPE_CHECKING:
    import plotly.graph_objects as go

FORECAST = {"setup": {"target": "y", "ds": "ds"},
            "create_model": {"model_type": "Prophet", "params": {"seasonality_mode": "multiplicative"}},
            "forecast": {"horizon": 30}}
MONITOR = {"setup": {"ds": "ds", "label": "fault"},
           "create_model": {"model_type": "PCA", "params": {"n_components": 0.9, "confidence": 0.99}}}


def run(hub: Hub | None = None, out: Path | None = None) -> dict[str, object]:
    if hub is None:
        from .faces import ExperimentHub

        hub = ExperimentHub()
    out = out or hub.settings.home / "figures"
    started = time.perf_counter()
    print(f"ExperimentHub demo: MLflow at {hub.tracking.uri}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    sales, process = f"demo_sales_{stamp}", f"demo_tep_{stamp}"
    training = datasets.load("tep_normal_train").assign(fault=0)
    hub.create_experiment(sales, "time_series", FORECAST, data=datasets.load("prophet_daily"))
    hub.create_experiment(process, "fault_detection", MONITOR, data=training)
    for name in (sales, process):
        status = hub.wait(name, timeout=600)
        assert status.started_at is not None and status.ended_at is not None  # a finished training has both
        print(f"  {name}: {status.state} in {(status.ended_at - status.started_at).total_seconds():.1f} s, "
              f"metrics {_short(status.metrics)}")
    ahead = hub.predict(sales)
    print(f"  {sales}: forecast {len(ahead)} days ahead, {ahead['ds'].min():%Y-%m-%d} .. "
          f"{ahead['ds'].max():%Y-%m-%d}")
    faulty = hub.predict(process, datasets.load("tep_idv01_test"))
    after = faulty["fault"] == 1
    print(f"  {process}: IDV(1) fault detected on {faulty.loc[after, 'anomaly'].mean():.1%} of faulty samples, "
          f"false alarms {faulty.loc[~after, 'anomaly'].mean():.1%} before the fault")
    written = []
    for name in (sales, process):
        hub.save(name)
        model_figures, eda_figures = hub.plot_names(name)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for figure in model_figures:
            written.append(_write(hub.plot(name, figure), folder / f"{figure}.html"))
        for figure in eda_figures:
            written.append(_write(hub.plot_eda(name, figure), folder / f"eda_{figure}.html"))
        print(f"  {name}: MLflow experiment id {hub.exp_id(name)}, run {hub.run_id(name)}")
    print(f"Figures ({len(written)} HTML files, open in a browser): {out}")
    if hub.settings.uses_embedded_tracking:
        print(f"Browse the runs: mlflow ui --backend-store-uri {hub.tracking.uri}")
    print(f"Done in {time.perf_counter() - started:.1f} s")
    return {"experiments": [sales, process], "figures": written}


def _write(figure: go.Figure, path: Path) -> Path:
    figure.write_html(path, include_plotlyjs="directory")  # one shared plotly.min.js, works offline
    return path


def _short(metrics: dict[str, float]) -> str:
    keys = [k for k in ("mape", "coverage", "n_components", "anomaly_rate") if k in metrics]
    return ", ".join(f"{k}={metrics[k]:.3g}" for k in keys)
