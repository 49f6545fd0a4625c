"""``time_series``: Prophet forecasts with intervals, anomaly flags and accuracy metrics.

Config::

    {"setup": {"target": "y", "ds": "ds", "regressors": [], "country_holidays": null,
               "missing": "error"},
     "create_model": {"model_type": "Prophet", "params": {...Prophet(...) arguments...}},
     "forecast": {"horizon": 30, "freq": null, "seed": 0},
     "anomaly": {"rule": "interval", "interval_width": 0.99, "k": null},
     "evaluate": {"horizon": 30, "folds": 3, "seasonality": null},   # optional: a backtest
     "retrain": {"metric": "mape", "threshold": 0.2, "window": 100}}

Forecasts follow the data's own calendar (:mod:`.timeseries_calendar`): without ``forecast.freq``
the future has the step the training timestamps show, and only the weekdays and hours they have
(business days for weekday data, no nights for data without nights), as Prophet's documentation
advises for data with regular gaps. A given ``freq`` is used as is.

The anomaly band is its own setting, not Prophet's forecast interval (``create_model.params.
interval_width``, 0.8 by default: one normal point in five falls outside it). Rule "interval" flags
actuals outside the band of width ``anomaly.interval_width`` (0.99); "residual" flags
|y - yhat| > k * (training residual standard deviation), with ``k`` by default (null) the normal
quantile that matches ``interval_width`` (2.576 for 0.99; :func:`residual_k`). On data that fits
the model, the expected share of flagged normal points (false alarms) is ``1 - interval_width``
(for an explicit ``k``: the two-sided normal tail beyond it): see
:meth:`TimeSeriesExperiment.expected_false_alarm_rate`.

``evaluate`` (absent: no backtest) runs a rolling-origin backtest with ``folds`` folds of
``horizon`` rows of the data's calendar and scores a seasonal-naive baseline on the same folds
(:mod:`.timeseries_backtest`; ``seasonality``: the baseline's season in rows, default from the
calendar). Its metrics are ``cv_*``, ``baseline_cv_*`` and ``cv_rel_mae``; the per-fold table is
:attr:`Evaluation.backtest`.

Uncertainty sampling is seeded (``forecast.seed``) so that the same model gives the same intervals
in any process.
"""

from __future__ import annotations

import logging
import threading
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import check_keys, choice, number, optional_section, optional_str, parse_common, parse_retrain
from ..errors import DataError, InvalidConfig, NoData
from . import timeseries_calendar, timeseries_figures
from .base import Evaluation, ExperimentType, ParamSpec, Progress
from .eda import EDA_FIGURES

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    import plotly.graph_objects as go
    from prophet import Prophet

_EXCLUDED_PARAMS = {"self", "holidays", "stan_backend", "changepoints"}
_RANDOM_LOCK = threading.Lock()  # Prophet samples intervals from numpy's global generator
_quiet = False


def quiet_stan_logging() -> None:
    """cmdstanpy logs every fit at INFO through its own handler; silence it once (cmdstanpy#665)."""
    global _quiet
    if not _quiet:
        logging.getLogger("cmdstanpy").disabled = True
        logging.getLogger("prophet").setLevel(logging.WARNING)
        _quiet = True


def prophet_parameters() -> dict[str, Any]:
    import inspect

    from prophet import Prophet

    signature = inspect.signature(Prophet.__init__)
    return {n: p.default for n, p in signature.parameters.items() if n not in _EXCLUDED_PARAMS}


class TimeSeriesExperiment(ExperimentType):
    type_name: ClassVar[str] = "time_series"
    model_types: ClassVar[tuple[str, ...]] = ("Prophet",)
    retrain_metrics: ClassVar[tuple[str, ...]] = ("mae", "rmse", "mape", "anomaly_rate")
    setup_keys: ClassVar[tuple[str, ...]] = ("ds", "target")
    figure_names: ClassVar[tuple[str, ...] | None] = timeseries_figures.MODEL_FIGURES
    eda_figure_names: ClassVar[tuple[str, ...] | None] = EDA_FIGURES

    @classmethod
    def warm_up(cls) -> None:
        prophet_parameters()  # validating a config reads Prophet's signature: imports prophet

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
        config = parse_common(config, cls.model_types)
        setup = config["setup"]
        check_keys(setup, ("target", "ds", "regressors", "country_holidays", "missing"), "setup")
        setup["target"] = optional_str(setup, "target", "setup", "y")
        setup["ds"] = optional_str(setup, "ds", "setup", "ds")
        regressors = setup.get("regressors") or []
        if not isinstance(regressors, list) or not all(isinstance(r, str) and r for r in regressors):
            raise InvalidConfig("must be a list of column names", "setup.regressors")
        setup["regressors"] = regressors
        setup["country_holidays"] = optional_str(setup, "country_holidays", "setup")
        setup["missing"] = choice(setup, "missing", "setup", ("error", "drop", "interpolate"), "error")

        params = config["create_model"]["params"]
        known = prophet_parameters()
        for name in params:
            if name not in known:
                raise InvalidConfig(
                    f"not a Prophet parameter; choices: {', '.join(sorted(known))}", f"create_model.params.{name}"
                )
        _check_prophet_params(params)
        try:
            _build_prophet(params)
        except (ValueError, TypeError) as exc:
            raise InvalidConfig(f"Prophet rejected the parameters: {exc}", "create_model.params") from exc
        if setup["ds"] == setup["target"]:
            raise InvalidConfig(f"ds and target are both {setup['ds']!r}; they must be two columns", "setup.target")
        reserved = {setup["ds"], setup["target"], "ds", "y", "cap", "floor"}
        for regressor in regressors:
            if regressor in reserved:
                raise InvalidConfig(f"{regressor!r} cannot be a regressor (it is the timestamp, the target or a "
                                    f"name Prophet reserves)", "setup.regressors")
        if setup["country_holidays"]:
            _check_country(setup["country_holidays"])

        forecast = config["forecast"]
        check_keys(forecast, ("horizon", "freq", "seed"), "forecast")
        forecast["horizon"] = number(forecast, "horizon", "forecast", 30, low=0, high=1_000_000, integer=True)
        forecast["freq"] = optional_str(forecast, "freq", "forecast")
        if forecast["freq"]:
            _check_freq(forecast["freq"])
        forecast["seed"] = number(forecast, "seed", "forecast", 0, low=0, high=2**32 - 1, integer=True)

        anomaly = config["anomaly"]
        check_keys(anomaly, ("rule", "interval_width", "k"), "anomaly")
        anomaly["rule"] = choice(anomaly, "rule", "anomaly", ("interval", "residual"), "interval")
        width = float(number(anomaly, "interval_width", "anomaly", 0.99, low=0, high=1))
        if not 0 < width < 1:
            raise InvalidConfig(f"must be strictly between 0 and 1 (the share of normal points inside the "
                                f"band), got {width!r}", "anomaly.interval_width")
        anomaly["interval_width"] = width
        k = number(anomaly, "k", "anomaly", None, low=0)
        # not filled in: null follows interval_width, also when a form edits it later
        anomaly["k"] = None if k is None else float(k)
        evaluate = optional_section(config, "evaluate")
        if evaluate is not None:
            config["evaluate"] = _parse_evaluate(evaluate, forecast["horizon"])
        config["retrain"] = parse_retrain(config["retrain"], cls.retrain_metrics, "mape") or {}
        return config

    @classmethod
    def sweep_setup(cls, config: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """Candidates are ranked by ``cv_mape`` (out of sample); without an ``evaluate`` section
        they get the default backtest (3 folds of the forecast horizon)."""
        if config.get("evaluate"):
            return "cv_mape", config
        return "cv_mape", {**config, "evaluate": _parse_evaluate({}, config["forecast"]["horizon"] or 30)}

    @classmethod
    def expected_false_alarm_rate(cls, config: Any) -> float:
        """The share of normal points the anomaly rule flags on data the model fits: ``1 -
        anomaly.interval_width``; for rule "residual" with an explicit ``k``, ``P(|Z| > k)``."""
        anomaly = cls.parse_config(config)["anomaly"]
        if anomaly["rule"] == "residual":
            return round(2 * (1 - NormalDist().cdf(residual_k(anomaly))), 12)
        return round(1 - anomaly["interval_width"], 12)

    @classmethod
    def model_parameters(cls, model_type: str) -> list[ParamSpec]:
        choices = {
            "growth": ("linear", "logistic", "flat"),
            "seasonality_mode": ("additive", "multiplicative"),
            "holidays_mode": ("additive", "multiplicative"),
            "scaling": ("absmax", "minmax"),
        }
        specs = []
        for name, default in prophet_parameters().items():
            if name in choices:
                specs.append(ParamSpec(name, "choice", default, choices[name]))
            elif name.endswith("_seasonality"):
                specs.append(ParamSpec(name, "choice", default, ("auto", True, False), "or a Fourier order"))
            elif isinstance(default, bool):
                specs.append(ParamSpec(name, "bool", default))
            elif isinstance(default, int):
                specs.append(ParamSpec(name, "int", default))
            elif isinstance(default, float):
                specs.append(ParamSpec(name, "float", default))
            else:
                specs.append(ParamSpec(name, "json", default))
        return specs

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
        frame[ds] = _parse_ds(frame[ds], ds)
        for column in (target, *setup["regressors"], *self._bounds()):
            frame[column] = _numeric(frame[column], column)
        frame = _handle_missing(frame, [ds, target, *setup["regressors"]], setup["missing"], ds)
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
        quiet_stan_logging()
        setup = self.config["setup"]
        progress("fitting", 0.2)
        model = _build_prophet(self.config["create_model"]["params"])
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
        frame = _concat(self._flag(past, history["y"]), ahead)
        metrics = accuracy(frame)
        backtest = None
        if evaluate:
            from . import timeseries_backtest

            seed = self.config["forecast"]["seed"]
            backtest, scores = timeseries_backtest.run(
                model, evaluate["horizon"], evaluate["folds"], self._season(calendar),
                lambda m, rows: seeded_predict(m, rows, seed), progress, start=0.35, end=0.8)
            metrics.update(scores)
        return Evaluation(frame=frame, metrics=metrics, backtest=backtest)

    def predict(self, data: pd.DataFrame | None) -> pd.DataFrame:
        if data is None:
            return _output(self._forecast(self._future()))
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
        frame[ds] = _parse_ds(frame[ds], ds)
        if frame[ds].isna().any():
            raise DataError(f"column {ds!r} has missing timestamps", ds)
        for column in setup["regressors"]:
            frame[column] = _numeric(frame[column], column)
        for column in self._bounds():  # capacities not sent: the last one trained on holds
            frame[column] = _numeric(frame[column], column) if column in frame else self.model.history[column].iloc[-1]
        model_input = frame[[ds, *setup["regressors"], *self._bounds()]].rename(columns={ds: "ds"})
        forecast = self._forecast(model_input)
        if target is None:
            return _output(forecast)
        actual = _numeric(frame[target], target).reset_index(drop=True)
        return _output(self._flag(forecast, actual))

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
        """The band outside which an actual is an anomaly.

        Rule "residual": yhat +- k * (training residual SD). Rule "interval": Prophet's forecast
        interval widened from its ``interval_width`` to ``anomaly.interval_width``, each side
        scaled by the ratio of the normal quantiles: ``yhat + (yhat_upper - yhat) * z(0.99) /
        z(0.8)``. Why this and not a second sampling at 0.99: in-sample, Prophet's predictive
        samples are the fitted curve plus Gaussian noise (sigma_obs), so its interval is normal
        and the rescaled band is the 0.99 interval in expectation; it costs nothing (no second
        ``predict``, whose time is mostly sampling); its Monte-Carlo error is smaller than that of
        the 0.5 % / 99.5 % sample quantiles (from 1000 samples about 0.11 sigma against 0.15, as
        only ~5 samples lie beyond each); and ahead of the data it still widens with the trend
        uncertainty Prophet samples. An empirical quantile of the training residuals would flag
        exactly 1 % by construction, spikes or not, so it would hide a burst of anomalies.
        Without uncertainty samples (no interval) the band is yhat +- z * residual SD."""
        anomaly = self.config["anomaly"]
        yhat = forecast["yhat"]
        width = float(self.model.interval_width) if self.model is not None else 0.8
        if anomaly["rule"] == "interval" and "yhat_lower" in forecast and 0 < width < 1:
            ratio = _normal_quantile(anomaly["interval_width"]) / _normal_quantile(width)
            return (yhat - (yhat - forecast["yhat_lower"]) * ratio,
                    yhat + (forecast["yhat_upper"] - yhat) * ratio)
        k = residual_k(anomaly) if anomaly["rule"] == "residual" else _normal_quantile(anomaly["interval_width"])
        spread = k * self.learned["residual_std"]
        return yhat - spread, yhat + spread

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
        return accuracy(scored).get(metric)

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

        quiet_stan_logging()
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


def residual_k(anomaly: dict[str, Any]) -> float:
    """The residual rule's k: as given, else the normal quantile matching ``interval_width`` (a
    normal residual exceeds k standard deviations with probability ``1 - interval_width``)."""
    return anomaly["k"] if anomaly.get("k") is not None else _normal_quantile(anomaly["interval_width"])


def _normal_quantile(width: float) -> float:
    """z such that a standard normal lies within +-z with probability ``width``."""
    return NormalDist().inv_cdf(0.5 + width / 2)


def _parse_evaluate(section: dict[str, Any], forecast_horizon: int) -> dict[str, Any]:
    check_keys(section, ("horizon", "folds", "seasonality"), "evaluate")
    horizon = number(section, "horizon", "evaluate", forecast_horizon or None, low=1, high=1_000_000,
                     integer=True)
    if horizon is None:
        raise InvalidConfig("give the backtest's horizon in rows (forecast.horizon is 0, so there is no "
                            "default)", "evaluate.horizon")
    return {
        "horizon": horizon,
        "folds": number(section, "folds", "evaluate", 3, low=1, high=1000, integer=True),
        "seasonality": number(section, "seasonality", "evaluate", None, low=1, high=1_000_000, integer=True),
    }


def _build_prophet(params: dict[str, Any]) -> Prophet:
    quiet_stan_logging()
    from prophet import Prophet

    return Prophet(**params)


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"prophet=={version('prophet')}", f"pandas=={version('pandas')}"]


def _check_freq(freq: str) -> None:
    from pandas.tseries.frequencies import to_offset

    try:
        offset = to_offset(freq)
    except ValueError as exc:
        raise InvalidConfig(f"not a pandas frequency alias ({exc}); examples: 'D', 'h', '15min', 'W', 'MS'",
                            "forecast.freq") from exc
    if offset.n <= 0:
        raise InvalidConfig(f"must step forward in time; got {freq!r}", "forecast.freq")


_POSITIVE = ("seasonality_prior_scale", "holidays_prior_scale", "changepoint_prior_scale")
_COUNTS = ("mcmc_samples", "n_changepoints", "uncertainty_samples")
_SEASONALITIES = ("yearly_seasonality", "weekly_seasonality", "daily_seasonality")


def _check_prophet_params(params: dict[str, Any]) -> None:
    """The ranges Prophet itself leaves to its optimiser to trip over (a Stan failure, late)."""
    def fail(name: str, what: str) -> None:
        raise InvalidConfig(f"must be {what}; got {params[name]!r}", f"create_model.params.{name}")

    def real(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for name in _POSITIVE:
        if name in params and not (real(params[name]) and params[name] > 0):
            fail(name, "a number above 0")
    for name in _COUNTS:
        if name in params and not (isinstance(params[name], int) and not isinstance(params[name], bool)
                                   and params[name] >= 0):
            fail(name, "an integer >= 0")
    for name, low, high in (("interval_width", 0, 1), ("changepoint_range", 0, 1)):
        if name in params and not (real(params[name]) and low < params[name] <= high):
            fail(name, f"a number in ({low}, {high}]")
    for name in _SEASONALITIES:
        value = params.get(name, "auto")
        if not (value == "auto" or isinstance(value, bool) or (isinstance(value, int) and value >= 0)):
            fail(name, "'auto', true, false or a Fourier order (an integer >= 0)")


def _check_country(code: str) -> None:
    import holidays

    try:
        holidays.country_holidays(code)
    except NotImplementedError as exc:
        raise InvalidConfig(f"no holidays known for country {code!r}; use an ISO code such as 'US', 'DE', 'FR'",
                            "setup.country_holidays") from exc


def _parse_ds(values: pd.Series, column: str) -> pd.Series:
    from ..tables import parse_timestamps

    return parse_timestamps(values, column)  # naive: Prophet wants naive timestamps


def _numeric(values: pd.Series, column: str) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    try:
        return pd.to_numeric(values, errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        bad = _first_bad(values, float)
        raise DataError(f"column {column!r} must be numeric (dtype {values.dtype}); cannot read {bad!r} "
                        f"as a number", column) from exc


def _first_bad(values: pd.Series, parse: Callable[[Any], object]) -> Any:
    for value in values:
        try:
            parse(value)
        except (ValueError, TypeError, OverflowError):
            return value
    return None


def _handle_missing(frame: pd.DataFrame, columns: list[str], policy: str, ds: str) -> pd.DataFrame:
    import numpy as np

    missing = {c: int(frame[c].isna().sum()) for c in columns}
    infinite = [c for c in columns if c != ds and np.isinf(frame[c].to_numpy(dtype=float)).any()]
    if infinite:
        raise DataError(f"column(s) {infinite} hold infinite values; remove or replace them", infinite[0])
    if missing[ds]:
        raise DataError(f"column {ds!r} has {missing[ds]} missing timestamp(s); every row needs one", ds)
    holes = {c: n for c, n in missing.items() if n}
    if not holes:
        return frame
    if policy == "error":
        first = next(iter(holes))
        raise DataError(
            f"missing values (NaN) in {holes}; clean the data or set setup.missing to 'drop' or 'interpolate'",
            first)
    if policy == "drop":
        return frame.dropna(subset=list(holes))
    frame = frame.sort_values(ds)
    for column in holes:
        frame[column] = frame[column].interpolate(limit_direction="both")
    return frame


def _concat(*frames: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    return pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else frames[0]


_OUTPUT = ("ds", "yhat", "yhat_lower", "yhat_upper", "y", "anomaly", "anomaly_lower", "anomaly_upper")


def _output(forecast: pd.DataFrame) -> pd.DataFrame:
    return forecast[[c for c in _OUTPUT if c in forecast.columns]].reset_index(drop=True)


def accuracy(frame: pd.DataFrame) -> dict[str, float]:
    """MAE, RMSE, MAPE (rows with y == 0 left out), interval coverage (when there is an interval)
    and anomaly rate."""
    import numpy as np

    if "y" not in frame:
        return {}
    scored = frame[frame["y"].notna()]
    if len(scored) == 0:
        return {}
    y, yhat = scored["y"].to_numpy(dtype=float), scored["yhat"].to_numpy(dtype=float)
    error = y - yhat
    nonzero = y != 0
    metrics = {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "anomaly_rate": float(scored["anomaly"].mean()),
        "n_rows": float(len(scored)),
    }
    if "yhat_lower" in scored:  # (no interval without uncertainty samples)
        metrics["coverage"] = float(np.mean((y >= scored["yhat_lower"]) & (y <= scored["yhat_upper"])))
    if nonzero.any():
        metrics["mape"] = float(np.mean(np.abs(error[nonzero] / y[nonzero])))
    return metrics
