"""Rolling-origin backtests of a fitted Prophet model, scored against a seasonal-naive baseline.

Fold k (k = 1..K) fits on every row before position ``n - k*H`` and forecasts the next H rows,
counted in rows of the data's own calendar (see :mod:`.timeseries_calendar`): for weekday data a
horizon of 5 is a business week, for data without nights it skips the nights.

Each fold refits :func:`prophet.diagnostics.prophet_copy` of the full model, as Prophet's own
``cross_validation`` does: the same parameters, and the seasonalities the full fit decided on
(automatic ones are not re-decided on the shorter history), so the results match
``cross_validation`` + ``performance_metrics`` on the same cutoffs.

The baseline is the seasonal-naive forecast (the value one season back; the last value when the
season is 1 row), scored on the same folds with its textbook interval (Hyndman & Athanasopoulos,
FPP3 5.5: ``sigma * sqrt(seasons ahead)``, sigma from its in-sample residuals) at Prophet's
``interval_width``. MASE scales each fold's errors by the in-sample MAE of the seasonal-naive
forecast on that fold's training rows (Hyndman & Koehler 2006).

Folds are independent: with ``workers`` > 1 they are fitted in that many forked processes at once
(as ``cross_validation(parallel="processes")`` does), children of the training job's own process
group, so a stop kills them with it. Forking is safe only in a single-threaded process (a job of
the worker server is one); elsewhere (a type trained in a thread of the kernel) the folds run one
after another.

Metrics that cannot be computed are left out, never NaN (JSON answers refuse NaN): MAPE when a
value is (nearly) zero, as ``performance_metrics`` does; coverage without uncertainty samples; MASE
when the naive in-sample error is zero.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from ..errors import InvalidConfig

if TYPE_CHECKING:
    import pandas as pd

    from .base import Progress

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("fold", "cutoff", "step", "ds", "y", "yhat", "yhat_lower", "yhat_upper", "baseline",
                 "baseline_lower", "baseline_upper")


def min_train_rows(season: int) -> int:
    """Rows the first fold must fit on: a season and one more (the baseline looks one season back
    and MASE scales by the naive error inside the training rows), and never fewer than 10."""
    return max(10, season + 1)


def check_rows(rows: int, horizon: int, folds: int, season: int) -> None:
    """Refuse a backtest the data is too short for, saying how many rows it needs."""
    first = min_train_rows(season)
    needed = folds * horizon + first
    if rows < needed:
        raise InvalidConfig(
            f"{folds} fold(s) of {horizon} rows need at least {needed} rows ({folds} x {horizon} to forecast "
            f"and {first} before them to fit the first fold on, with a season of {season} rows); the data "
            f"has {rows}. Lower evaluate.horizon or evaluate.folds, or send more rows", "evaluate.horizon")


def run(model: Any, horizon: int, folds: int, season: int,
        predict: Callable[[Any, pd.DataFrame], pd.DataFrame], progress: Progress,
        start: float = 0.0, end: float = 1.0, workers: int = 1) -> tuple[pd.DataFrame, dict[str, float]]:
    """Backtest the fitted Prophet ``model``: the per-fold, per-step table and the metrics.

    ``predict(m, frame)`` forecasts with a fold's model (the caller seeds the sampling);
    ``progress`` is told after each fold, moving from ``start`` to ``end``; ``workers`` > 1 fits
    that many folds at once in forked processes (where forking is safe)."""
    import pandas as pd

    history = model.history.reset_index(drop=True)  # sorted, NaN targets dropped: Prophet's own rows
    check_rows(len(history), horizon, folds, season)
    job = _Folds(model, history, horizon, season, predict)
    order = list(range(folds, 0, -1))  # oldest fold first
    parts: dict[int, pd.DataFrame] = {}

    def done(k: int, part: pd.DataFrame) -> None:
        parts[k] = part
        progress("backtest", start + (end - start) * len(parts) / folds)

    processes = min(int(workers), folds)
    if processes > 1 and threading.active_count() > 1:
        log.info("backtest folds run one after another: this process has threads, so it may not fork")
        processes = 1
    if processes > 1:
        _in_processes(job, order, processes, done)
    else:
        for k in order:
            done(k, job.fold(k))
    table = pd.concat([parts[k] for k in order], ignore_index=True)
    metrics = {f"cv_{k}": v for k, v in scores(table, "yhat").items()}
    metrics.update({f"baseline_cv_{k}": v for k, v in scores(table, "baseline").items()})
    if metrics.get("baseline_cv_mae", 0) > 0:
        metrics["cv_rel_mae"] = metrics["cv_mae"] / metrics["baseline_cv_mae"]
    return table.drop(columns="_scale")[list(TABLE_COLUMNS)], metrics


class _Folds:
    """One backtest's folds: :meth:`fold` fits and scores fold k (in this process or a forked one)."""

    def __init__(self, model: Any, history: pd.DataFrame, horizon: int, season: int,
                 predict: Callable[[Any, pd.DataFrame], pd.DataFrame]) -> None:
        self.model, self.history, self.horizon, self.season, self.predict = model, history, horizon, season, predict

    def fold(self, k: int) -> pd.DataFrame:
        import numpy as np
        import pandas as pd
        from prophet.diagnostics import prophet_copy

        model, history, horizon = self.model, self.history, self.horizon
        train_end = len(history) - k * horizon
        cutoff = history["ds"].iloc[train_end - 1]
        train, test = history.iloc[:train_end], history.iloc[train_end:train_end + horizon]
        fold_model = prophet_copy(model, cutoff)
        # prophet_copy (1.5) forgets `scaling`; without it a minmax-scaled model would be
        # backtested as absmax. For every other setting this is exactly cross_validation's copy.
        fold_model.scaling = model.scaling
        fold_model.fit(train, **model.fit_kwargs)
        # the fold model's own needs: fitted on Prophet's history frame, which holds a 'floor'
        # column, a logistic copy learns a floor the full model did not have (as in cross_validation)
        forecast = self.predict(fold_model, test[_input_columns(fold_model)])
        if fold_model.stan_backend is not None:
            fold_model.stan_backend.cleanup()
        y_train = train["y"].to_numpy(dtype=float)
        naive, lower, upper, scale = seasonal_naive(y_train, len(test), self.season, float(model.interval_width))
        part = pd.DataFrame({
            "fold": k, "cutoff": cutoff, "step": np.arange(1, len(test) + 1),
            "ds": test["ds"].to_numpy(), "y": test["y"].to_numpy(dtype=float),
            "yhat": forecast["yhat"].to_numpy(dtype=float),
            "yhat_lower": _column(forecast, "yhat_lower"), "yhat_upper": _column(forecast, "yhat_upper"),
            "baseline": naive, "baseline_lower": lower, "baseline_upper": upper,
        })
        part["_scale"] = scale
        return part


_forked: _Folds | None = None  # the backtest a forked fold process works on (inherited, not pickled)


def _fold_in_child(k: int) -> pd.DataFrame:
    assert _forked is not None
    return _forked.fold(k)


def _in_processes(job: _Folds, order: list[int], processes: int, done: Callable[[int, pd.DataFrame], None]) -> None:
    """Fit the folds in ``processes`` forked processes: they inherit the model (nothing is pickled
    but the fold numbers and the result tables)."""
    import concurrent.futures
    import multiprocessing

    global _forked
    _forked = job
    try:
        with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {pool.submit(_fold_in_child, k): k for k in order}
            for future in concurrent.futures.as_completed(futures):
                done(futures[future], future.result())
    finally:
        _forked = None


def seasonal_naive(y: Any, horizon: int, season: int, level: float) -> tuple[Any, Any, Any, float]:
    """The seasonal-naive forecast of the ``horizon`` values after ``y``, its interval at
    ``level`` and the MASE scale (in-sample MAE of the naive forecast; NaN when undefined).

    Step h repeats the value ``m * ceil(h / m)`` rows back (m = season): the last season, again."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    m = max(1, int(season))
    steps = np.arange(1, horizon + 1)
    back = m * np.ceil(steps / m).astype(int)
    naive = y[len(y) - back + steps - 1]
    residual = y[m:] - y[:-m]
    scale = float(np.mean(np.abs(residual))) if len(residual) else math.nan
    sigma = float(np.sqrt(np.mean(residual ** 2))) if len(residual) else math.nan
    spread = NormalDist().inv_cdf(0.5 + level / 2) * sigma * np.sqrt(np.ceil(steps / m)) if level < 1 \
        else np.full(horizon, math.nan)
    return naive, naive - spread, naive + spread, scale


def scores(table: pd.DataFrame, forecast: str) -> dict[str, float]:
    """MAE, RMSE, MAPE, sMAPE (Prophet's definitions), coverage and MASE of column ``forecast``
    (``yhat`` or ``baseline``, with ``*_lower`` / ``*_upper``) over every row of ``table``."""
    import numpy as np

    y, yhat = table["y"].to_numpy(dtype=float), table[forecast].to_numpy(dtype=float)
    error = y - yhat
    out = {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2)))}
    if np.abs(y).min() >= 1e-8:  # performance_metrics skips MAPE likewise
        out["mape"] = float(np.mean(np.abs(error / y)))
    with np.errstate(invalid="ignore", divide="ignore"):
        smape = np.abs(error) / ((np.abs(y) + np.abs(yhat)) / 2)
    out["smape"] = float(np.mean(np.nan_to_num(smape, nan=0.0)))  # 0/0: both zero, no error
    lower, upper = table[f"{forecast}_lower"].to_numpy(dtype=float), table[f"{forecast}_upper"].to_numpy(dtype=float)
    if not (np.isnan(lower).any() or np.isnan(upper).any()):
        out["coverage"] = float(np.mean((y >= lower) & (y <= upper)))
    if "_scale" in table:
        scale = table["_scale"].to_numpy(dtype=float)
        if np.all(scale > 0):
            out["mase"] = float(np.mean(np.abs(error) / scale))
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _input_columns(model: Any) -> list[str]:
    """What a fold's model needs to predict (as ``single_cutoff_forecast`` selects them)."""
    columns = ["ds"]
    if model.growth == "logistic":
        columns.append("cap")
        if model.logistic_floor:
            columns.append("floor")
    columns.extend(model.extra_regressors)
    columns.extend(p["condition_name"] for p in model.seasonalities.values() if p["condition_name"] is not None)
    return list(dict.fromkeys(columns))


def _column(frame: pd.DataFrame, name: str) -> Any:
    import numpy as np

    return frame[name].to_numpy(dtype=float) if name in frame else np.full(len(frame), np.nan)
