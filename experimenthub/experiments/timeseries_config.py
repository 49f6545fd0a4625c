"""The ``time_series`` config: its sections parsed and checked, and Prophet's own parameters.

:func:`parse` turns a raw config into the canonical one ``TimeSeriesExperiment`` works from, or
raises :class:`~experimenthub.errors.InvalidConfig` naming the offending key. ``create_model.params``
are Prophet's constructor arguments (:func:`prophet_parameters`, which :func:`param_specs` offers
to forms); the ranges Prophet leaves to its optimiser to trip over are checked here, and a
``Prophet`` is built from them (:func:`build_prophet`) so that whatever else it rejects fails at
validation, not in the fit. Prophet, pandas and ``holidays`` are imported inside functions, so
importing this module stays light.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..config import check_keys, choice, number, optional_section, optional_str, parse_common, parse_retrain
from ..errors import InvalidConfig
from .base import ParamSpec

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prophet import Prophet

_EXCLUDED_PARAMS = {"self", "holidays", "stan_backend", "changepoints"}
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


def build_prophet(params: dict[str, Any]) -> Prophet:
    quiet_stan_logging()
    from prophet import Prophet

    return Prophet(**params)


def parse(config: Any, model_types: Iterable[str], retrain_metrics: Iterable[str]) -> dict[str, Any]:
    """The canonical config (a deep copy, every section present and checked)."""
    config = parse_common(config, model_types)
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
        build_prophet(params)
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
        config["evaluate"] = parse_evaluate(evaluate, forecast["horizon"])
    config["retrain"] = parse_retrain(config["retrain"], retrain_metrics, "mape") or {}
    return config


def parse_evaluate(section: dict[str, Any], forecast_horizon: int) -> dict[str, Any]:
    check_keys(section, ("horizon", "folds", "seasonality", "workers"), "evaluate")
    horizon = number(section, "horizon", "evaluate", forecast_horizon or None, low=1, high=1_000_000,
                     integer=True)
    if horizon is None:
        raise InvalidConfig("give the backtest's horizon in rows (forecast.horizon is 0, so there is no "
                            "default)", "evaluate.horizon")
    return {
        "horizon": horizon,
        "folds": number(section, "folds", "evaluate", 3, low=1, high=1000, integer=True),
        "seasonality": number(section, "seasonality", "evaluate", None, low=1, high=1_000_000, integer=True),
        # folds fitted at once, in forked processes of the training job (1: one after another)
        "workers": number(section, "workers", "evaluate", 1, low=1, high=64, integer=True),
    }


def param_specs() -> list[ParamSpec]:
    """Prophet's parameters as forms offer them, with their defaults."""
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
