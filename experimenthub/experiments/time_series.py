"""``time_series``: Prophet forecasts with intervals, anomaly flags and accuracy metrics.

Config::

    {"setup": {"target": "y", "ds": "ds", "regressors": [], "country_holidays": null,
               "missing": "error"},
     "create_model": {"model_type": "Prophet", "params": {...Prophet(...) arguments...}},
     "forecast": {"horizon": 30, "freq": null, "seed": 0},
     "anomaly": {"rule": "interval", "interval_width": 0.99, "k": null},
     "evaluate": {"horizon": 30, "folds": 3, "seasonality": null, "workers": 1},  # optional: a backtest
     "retrain": {"metric": "mape", "threshold": 0.2, "window": 100}}

Forecasts follow the data's own calendar (:mod:`.timeseries_calendar`): without ``forecast.freq``
the future has the step the training timestamps show, and only the weekdays and hours they have
(business days for weekday data, no nights for data without nights), as Prophet's documentation
advises for data with regular gaps. A given ``freq`` is used as is.

The anomaly band is its own setting, not Prophet's forecast interval (``create_model.params.
interval_width``, 0.8 by default: one normal point in five falls outside it). Rule "interval" flags
actuals outside the band of width ``anomaly.interval_width`` (0.99); "residual" flags
|y - yhat| > k * (training residual standard deviation), with ``k`` by default (null) the normal
quantile that matches ``interval_width`` (2.576 for 0.99; :func:`.timeseries_scoring.residual_k`).
On data that fits the model, the expected share of flagged normal points (false alarms) is ``1 -
interval_width`` (for an explicit ``k``: the two-sided normal tail beyond it): see
:meth:`TimeSeriesExperiment.expected_false_alarm_rate`.

``evaluate`` (absent: no backtest) runs a rolling-origin backtest with ``folds`` folds of
``horizon`` rows of the data's calendar and scores a seasonal-naive baseline on the same folds
(:mod:`.timeseries_backtest`; ``seasonality``: the baseline's season in rows, default from the
calendar; ``workers``: folds fitted at once, in forked processes of the training job). Its metrics
are ``cv_*``, ``baseline_cv_*`` and ``cv_rel_mae``; the per-fold table is :attr:`Evaluation.backtest`.

Uncertainty sampling is seeded (``forecast.seed``) so that the same model gives the same intervals
in any process.

The config is parsed and checked in :mod:`.timeseries_config`, the data's columns in
:mod:`.timeseries_data`, and forecasts are scored (anomaly band, accuracy) in
:mod:`.timeseries_scoring`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import DataError, NoData
from . import timeseries_calendar, timeseries_config, timeseries_figures, timeseries_scoring
from .base import Evaluation, ExperimentType, ParamSpec, Progress
from .eda import EDA_FIGURES
from .timeseries_data import concat, handle_missing, numeric, output, parse_ds
from .timeseries_scoring import residual_k as residual_k  # re-exported: imported from here

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

_RANDOM_LOCK = threading.Lock()  # Prophet samples intervals from numpy's global generator


class TimeSeriesExperiment(ExperimentType):
    type_name: ClassVar[str] = "time_series"
    model_types: ClassVar[tuple[str, ...]] = ("Prophet",)
    retrain_metrics: ClassVar[tuple[str, ...]] = ("mae", "rmse", "mape", "anomaly_rate")
    setup_keys: ClassVar[tuple[str, ...]] = ("ds", "target")
    figure_names: ClassVar[tuple[str, ...] | None] = timeseries_figures.MODEL_FIGURES
    eda_figure_names: ClassVar[tuple[str, ...] | None] = EDA_FIGURES

    @classmethod
    def warm_up(cls) -> None:
        timeseries_config.prophet_parameters()  # validating a config reads Prophet's signature: imports prophet

    @classmethod
    def rehearsals(cls) -> list[tuple[dict[str, Any], pd.DataFrame]]:
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)

        def series(periods: int, freq: str) -> pd.DataFrame:  # long enough for every seasonality
            stamps = pd.date_range("2020-01-01", periods=periods, freq=freq)
            return pd.DataFrame({"ds": stamps, "y": np.sin(np.arange(periods) / 5) + rng.normal(0, 0.1, periods)})

        config = {"create_model": {"model_type": "Prophet", "params": {}}}
        # one fold of backtest: imports prophet.diagnostics before the worker forks jobs
        backtest = {**config, "evaluate": {"horizon": 24, "folds": 1}}
        return [(config, series(800, "D")), (backtest, series(24 * 15, "h"))]

    @classmethod
    def parse_config(cls, config: Any) -> dict[str, Any]:
        return timeseries_config.parse(config, cls.model_types, cls.retrain_metrics)

    @classmethod
    def sweep_setup(cls, config: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """Candidates are ranked by ``cv_mape`` (out of sample); without an ``evaluate`` section
        they get the default backtest (3 folds of the forecast horizon)."""
        if config.get("evaluate"):
            return "cv_mape", config
        default = timeseries_config.parse_evaluate({}, config["forecast"]["horizon"] or 30)
        return "cv_mape", {**config, "evaluate": default}

    @classmethod
    def expected_false_alarm_rate(cls, config: Any) -> float:
        """The share of normal points the anomaly rule flags on data the model fits: ``1 -
        anomaly.interval_width``; for rule "residual" with an explicit ``k``, ``P(|Z| > k)``."""
        return timeseries_scoring.false_alarm_rate(cls.parse_config(config)["anomaly"])

    @classmethod
    def model_parameters(cls, model_type: str) -> list[ParamSpec]:
        return timeseries_config.param_specs()

    # -- data ------------------------------------------------------------------------------
    def validate_data(self, frame: pd.DataFrame) -> pd.DataFrame:

        setup = self.config["setup"]
        ds, target = setup["ds"], setup["target"]
        if len(frame) == 0:
            raise NoData("the training data has 0 rows; send at least 2 rows with "
                         f"columns {ds!r} and {target!r}")
        if self._bounds() and "cap" not in frame.columns:
            raise DataError("growth 'logistic' needs a 'cap' column (the capacity the series saturates at) in "
                            "the data, and optionally 'floor'", "cap")
        self.learned["floor"] = bool(self._bounds()) and "floor" in frame.columns
        needed = [ds, target, *setup["regressors"], *self._bounds()]
        absent = [c for c in needed if c not in frame.columns]
        if absent:
            raise DataError(
                f"column(s) {absent} not in the data; columns present: {list(map(str, frame.columns))}. "
                f"Set setup.ds / setup.target to the right names.", absent[0])
        frame = frame.copy()
        frame[ds] = parse_ds(frame[ds], ds)
        for column in (target, *setup["regressors"], *self._bounds()):
            frame[column] = numeric(frame[column], column)
        frame = handle_missing(frame, [ds, target, *setup["regressors"]], setup["missing"], ds)
        if frame[target].notna().sum() < 2:
            raise DataError(f"need at least 2 non-missing values of {target!r} to fit a forecast", target)
        if frame.loc[frame[target].notna(), ds].nunique() < 2:
            raise DataError(f"need at least 2 distinct timestamps in {ds!r} to fit a forecast", ds)
        evaluate = self.config.get("evaluate")
        if evaluate:
            from . import timeseries_backtest

            observed = frame.loc[frame[target].notna(), ds]
            timeseries_backtest.check_rows(len(observed), evaluate["horizon"], evaluate["folds"],
                                           self._season(self._infer_calendar(observed)))
        return frame.sort_values(ds, kind="stable").reset_index(drop=True)

    def _model_frame(self, frame: pd.DataFrame, with_target: bool) -> pd.DataFrame:
        setup = self.config["setup"]
        columns = {setup["ds"]: "ds", **{r: r for r in setup["regressors"]}, **{c: c for c in self._bounds()}}
        if with_target:
            columns[setup["target"]] = "y"
        return frame[list(columns)].rename(columns=columns)

    # -- fit / predict ---------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, progress: Progress) -> Evaluation:
        timeseries_config.quiet_stan_logging()
        setup = self.config["setup"]
        progress("fitting", 0.2)
        model = timeseries_config.build_prophet(self.config["create_model"]["params"])
        for regressor in setup["regressors"]:
            model.add_regressor(regressor)
        if setup["country_holidays"]:
            model.add_country_holidays(setup["country_holidays"])
        history = self._model_frame(data, with_target=True)
        # MCMC fits draw a progress bar per chain unless told not to (optimisation takes no such flag)
        quiet = {"show_progress": False} if self.config["create_model"]["params"].get("mcmc_samples", 0) > 0 else {}
        model.fit(history, **quiet)
        self.model = model
        assert model.history is not None  # Prophet.fit sets it (typed Optional until then)
        calendar = self._infer_calendar(model.history["ds"])
        self.learned["freq"] = calendar.freq
        self.learned["calendar"] = calendar.to_json()
        evaluate = self.config.get("evaluate")
        progress("evaluating", 0.3 if evaluate else 0.6)
        import pandas as pd

        # one predict over history and horizon (uncertainty sampling has a fixed cost per call)
        forecast = self._forecast(pd.concat([history.drop(columns="y"), self._future()], ignore_index=True))
        past, ahead = forecast.iloc[: len(history)], forecast.iloc[len(history):]
        residual = history["y"].to_numpy() - past["yhat"].to_numpy()
        self.learned["residual_std"] = float(residual[history["y"].notna().to_numpy()].std())
        frame = concat(self._flag(past, history["y"]), ahead)
        metrics = timeseries_scoring.accuracy(frame)
        backtest = None
        if evaluate:
            from . import timeseries_backtest

            seed = self.config["forecast"]["seed"]
            backtest, scores = timeseries_backtest.run(
                model, evaluate["horizon"], evaluate["folds"], self._season(calendar),
                lambda m, rows: seeded_predict(m, rows, seed), progress, start=0.35, end=0.8,
                workers=evaluate["workers"])
            metrics.update(scores)
        return Evaluation(frame=frame, metrics=metrics, backtest=backtest)

    def predict(self, data: pd.DataFrame | None) -> pd.DataFrame:
        if data is None:
            return output(self._forecast(self._future()))
        setup = self.config["setup"]
        if len(data) == 0:
            raise NoData("no rows to predict on")
        ds = setup["ds"] if setup["ds"] in data.columns else "ds"
        target = setup["target"] if setup["target"] in data.columns else ("y" if "y" in data.columns else None)
        absent = [c for c in (ds, *setup["regressors"]) if c not in data.columns]
        if absent:
            raise DataError(f"column(s) {absent} not in the rows to predict; columns present: "
                            f"{list(map(str, data.columns))}", absent[0])
        frame = data.copy()
        frame[ds] = parse_ds(frame[ds], ds)
        if frame[ds].isna().any():
            raise DataError(f"column {ds!r} has missing timestamps", ds)
        for column in setup["regressors"]:
            frame[column] = numeric(frame[column], column)
        for column in self._bounds():  # capacities not sent: the last one trained on holds
            frame[column] = numeric(frame[column], column) if column in frame else self.model.history[column].iloc[-1]
        model_input = frame[[ds, *setup["regressors"], *self._bounds()]].rename(columns={ds: "ds"})
        forecast = self._forecast(model_input)
        if target is None:
            return output(forecast)
        actual = numeric(frame[target], target).reset_index(drop=True)
        return output(self._flag(forecast, actual))

    def _bounds(self) -> list[str]:
        """Logistic growth's capacity columns: 'cap' (required) and 'floor' (if trained with one)."""
        if self.config["create_model"]["params"].get("growth") != "logistic":
            return []
        return ["cap", "floor"] if self.learned.get("floor") else ["cap"]

    def _infer_calendar(self, ds: pd.Series) -> timeseries_calendar.Calendar:
        return timeseries_calendar.infer(ds, self.config["forecast"]["freq"])

    def calendar(self) -> timeseries_calendar.Calendar:
        """The calendar the fitted model forecasts on (runs saved before calendars: the step only)."""
        if "calendar" in self.learned:
            return timeseries_calendar.Calendar.from_json(self.learned["calendar"])
        return timeseries_calendar.given(self.learned["freq"])

    def _season(self, calendar: timeseries_calendar.Calendar) -> int:
        """The seasonal-naive baseline's season in rows: ``evaluate.seasonality`` or the calendar's."""
        return (self.config.get("evaluate") or {}).get("seasonality") or calendar.season

    def _future(self) -> pd.DataFrame:
        import pandas as pd

        horizon = self.config["forecast"]["horizon"]
        stamps = self.calendar().after(self.model.history["ds"].max(), horizon)
        future = pd.DataFrame({"ds": stamps})
        for column in (*self.config["setup"]["regressors"], *self._bounds()):
            # future regressor (and capacity) values are unknown: hold the last observed value
            future[column] = self.model.history[column].iloc[-1]
        return future

    def _forecast(self, frame: pd.DataFrame) -> pd.DataFrame:
        return seeded_predict(self.model, frame, self.config["forecast"]["seed"])

    def _flag(self, forecast: pd.DataFrame, actual: pd.Series) -> pd.DataFrame:
        out = forecast.copy()
        out["y"] = actual.to_numpy(dtype=float)
        out["anomaly_lower"], out["anomaly_upper"] = self._anomaly_band(out)
        outside = (out["y"] < out["anomaly_lower"]) | (out["y"] > out["anomaly_upper"])
        out["anomaly"] = outside & out["y"].notna()
        return out

    def _anomaly_band(self, forecast: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """The band outside which an actual is an anomaly: :func:`.timeseries_scoring.anomaly_band`
        at the model's own interval width (0.8 before a fit, Prophet's default)."""
        width = float(self.model.interval_width) if self.model is not None else 0.8
        return timeseries_scoring.anomaly_band(forecast, self.config["anomaly"], width, self.learned)

    # -- monitoring ------------------------------------------------------------------------
    def retrain_rows(self, predictions: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
        target = self.config["setup"]["target"]
        if target not in new_rows.columns:
            return new_rows.iloc[0:0]
        return new_rows[new_rows[target].notna()]

    def monitor(self, predictions: pd.DataFrame, metric: str) -> float | None:
        scored = predictions[predictions["y"].notna()] if "y" in predictions else predictions.iloc[0:0]
        if len(scored) == 0:
            return None
        if metric == "anomaly_rate":
            return float(scored["anomaly"].mean())
        return timeseries_scoring.accuracy(scored).get(metric)

    # -- figures ---------------------------------------------------------------------------
    def figures(self, train: pd.DataFrame, evaluation: Evaluation,
                predictions: pd.DataFrame | None) -> dict[str, go.Figure]:
        return timeseries_figures.build(self.model, evaluation.frame, predictions, self.config, self.calendar())

    def eda_figures(self, data: pd.DataFrame) -> dict[str, go.Figure]:
        from . import eda

        setup = self.config["setup"]
        return eda.standard_figures(data, ds=setup["ds"], columns=[setup["target"], *setup["regressors"]])

    # -- persistence -----------------------------------------------------------------------
    def save_model(self, path: str) -> None:
        import mlflow.prophet

        mlflow.prophet.save_model(self.model, path, pip_requirements=_pip_requirements())

    def load_model(self, path: str) -> None:
        from ..model_formats import load_prophet

        timeseries_config.quiet_stan_logging()
        # Prophet's JSON only; mlflow.prophet.load_model may put the flavor's code dir on sys.path
        self.model = load_prophet(path)


# -- helpers ---------------------------------------------------------------------------------

def seeded_predict(model: Any, frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``model.predict(frame)`` with numpy's global generator (which Prophet samples intervals
    from) seeded, and restored after: the same model gives the same intervals in any process."""
    import numpy as np

    if len(frame) == 0:
        return frame.assign(yhat=[], yhat_lower=[], yhat_upper=[])
    with _RANDOM_LOCK:
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            return model.predict(frame.reset_index(drop=True))
        finally:
            np.random.set_state(state)


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"prophet=={version('prophet')}", f"pandas=={version('pandas')}"]

