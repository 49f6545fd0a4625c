"""Backtest cost, side by side with bare ``prophet.diagnostics.cross_validation`` on the same folds.

    .venv/bin/python benchmarks/bench_backtest.py [--repeats 5] [--folds 5]

Rows, each a median over repeats with bare and ours interleaved (machine noise hits both alike):

* ``backtest only``: given one fitted model, :func:`timeseries_backtest.run` (refit per fold,
  forecast, seasonal-naive baseline, metrics, the table) against ``cross_validation`` on the same
  cutoffs and horizons + ``performance_metrics(rolling_window=1)``.
* ``fit with evaluate``: the experiment's whole ``fit`` with an ``evaluate`` section against bare
  ``Prophet().fit`` + one ``predict`` over history and horizon + the same cross-validation.

Data: Prophet's daily sample (510 weekday rows; a fold of H rows is H business days, so Prophet
needs one call per fold: the horizon in time differs when a fold spans a weekend or holiday), and
the last 60 days of Seattle's hourly temperatures (gap-free: one call with every cutoff).
* ``fit with evaluate, folds over 2 processes``: ``evaluate.workers: 2`` against
  ``cross_validation(parallel="processes")`` (which can spread only the cutoffs of one call: for
  the daily data, one call per fold, it stays serial).

Target: ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, table, timed


def bare_cross_validation(model, cutoffs, horizons, parallel=None):
    """Prophet's own backtest on the given cutoffs: one call when the horizon is the same for all
    (``parallel="processes"`` spreads its cutoffs over processes; one call per cutoff cannot)."""
    import pandas as pd
    from prophet.diagnostics import cross_validation, performance_metrics

    if len(set(horizons)) == 1:
        frames = [cross_validation(model, horizon=horizons[0], cutoffs=list(cutoffs), disable_tqdm=True,
                                   parallel=parallel)]
    else:
        frames = [cross_validation(model, horizon=h, cutoffs=[c], disable_tqdm=True)
                  for c, h in zip(cutoffs, horizons, strict=True)]
    result = pd.concat(frames, ignore_index=True)
    return performance_metrics(result, rolling_window=1)


def folds_of(history, horizon, folds):
    """The cutoffs and time horizons of our row-counted folds (oldest first)."""
    n = len(history)
    cutoffs, horizons = [], []
    for k in range(folds, 0, -1):
        end = n - k * horizon
        cutoffs.append(history["ds"].iloc[end - 1])
        horizons.append(history["ds"].iloc[end + horizon - 1] - cutoffs[-1])
    return cutoffs, horizons


def interleaved(repeats, bare, ours):
    bare_times, our_times = [], []
    for _ in range(repeats):
        bare_times.append(timed(bare))
        our_times.append(timed(ours))
    return median(bare_times), median(our_times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    import logging

    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.WARNING)
    from prophet import Prophet

    from experimenthub import datasets
    from experimenthub.experiments import timeseries_backtest
    from experimenthub.experiments.time_series import TimeSeriesExperiment, seeded_predict

    hourly = datasets.load("seattle_temps_hourly_2010")
    cases = [
        ("Prophet daily sample, 510 weekday rows", datasets.load("prophet_daily"), "y", 10),
        ("Seattle hourly, last 60 days (1,440 rows)", hourly.iloc[-24 * 60:].reset_index(drop=True), "temp_f", 24),
    ]
    rows = []
    for label, data, target, horizon in cases:
        config = {"setup": {"target": target}, "create_model": {"model_type": "Prophet", "params": {}},
                  "forecast": {"horizon": horizon}, "evaluate": {"horizon": horizon, "folds": args.folds}}
        experiment = TimeSeriesExperiment(config)
        frame = experiment.validate_data(data)
        experiment.fit(frame, lambda *_: None)
        model = experiment.model
        cutoffs, horizons = folds_of(model.history, horizon, args.folds)
        season = experiment.calendar().season

        def ours_backtest(m=model, h=horizon, s=season):
            return timeseries_backtest.run(m, h, args.folds, s, lambda fm, rows: seeded_predict(fm, rows, 0),
                                           lambda *_: None)

        bare, ours = interleaved(args.repeats, lambda m=model, c=cutoffs, h=horizons: bare_cross_validation(m, c, h),
                                 ours_backtest)
        rows.append([f"{label}: backtest only, {args.folds} x {horizon} rows", bare, ours, ours / bare])

        def bare_fit(d=frame, t=target, h=horizon, c=cutoffs, hz=horizons, f=experiment.calendar().freq):
            m = Prophet().fit(d.rename(columns={t: "y"})[["ds", "y"]])
            m.predict(m.make_future_dataframe(periods=h, freq=f))
            return bare_cross_validation(m, c, hz)

        def ours_fit(c=config, d=frame):
            e = TimeSeriesExperiment(c)
            return e.fit(d, lambda *_: None)

        bare, ours = interleaved(args.repeats, bare_fit, ours_fit)
        rows.append([f"{label}: fit with evaluate", bare, ours, ours / bare])

        parallel = {**config, "evaluate": {**config["evaluate"], "workers": 2}}

        def bare_fit_parallel(d=frame, t=target, h=horizon, c=cutoffs, hz=horizons, f=experiment.calendar().freq):
            m = Prophet().fit(d.rename(columns={t: "y"})[["ds", "y"]])
            m.predict(m.make_future_dataframe(periods=h, freq=f))
            return bare_cross_validation(m, c, hz, parallel="processes")

        bare, ours = interleaved(args.repeats, bare_fit_parallel, lambda c=parallel, d=frame: ours_fit(c, d))
        rows.append([f"{label}: fit with evaluate, folds over 2 processes", bare, ours, ours / bare])

    print(table(["work", "bare prophet s", "experimenthub s", "ratio"], rows))


if __name__ == "__main__":
    main()
