"""time_series on its own: the data's calendar, the anomaly band, backtests against Prophet's own.

Real Prophet on the shipped data sets (experimenthub.datasets): ``prophet_daily`` is Prophet's own
example (weekdays only, holidays missing too), ``seattle_temps_hourly_2010`` gives an hourly series
with night gaps once 22:00-06:00 is dropped.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from experimenthub import datasets
from experimenthub.errors import InvalidConfig
from experimenthub.experiments import timeseries_backtest, timeseries_calendar
from experimenthub.experiments.time_series import TimeSeriesExperiment, residual_k

QUICKSTART = {"setup": {"target": "y", "ds": "ds"},
              "create_model": {"model_type": "Prophet", "params": {"seasonality_mode": "multiplicative"}}}
DEFAULT = {"setup": {"target": "y", "ds": "ds"}, "create_model": {"model_type": "Prophet", "params": {}}}


def noop(stage: str, fraction: float) -> None:
    pass


def fit(config: dict, data: pd.DataFrame, progress=noop):
    experiment = TimeSeriesExperiment(config)
    return experiment, experiment.fit(experiment.validate_data(data), progress)


def with_(config: dict, **sections) -> dict:
    return {**config, **sections}


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    return datasets.load("prophet_daily")


@pytest.fixture(scope="module")
def daytime() -> pd.DataFrame:
    """Seattle's hourly temperatures without the nights (22:00-06:00), the last 60 days of 2010."""
    hourly = datasets.load("seattle_temps_hourly_2010")
    hours = hourly["ds"].dt.hour
    return hourly[(hours >= 6) & (hours < 22)].iloc[-16 * 60:].reset_index(drop=True)


def reachable(values: pd.Series, data: pd.Series) -> bool:
    """Within the range the data could reach: its sign, and not beyond its span past either end."""
    low, high = data.min(), data.max()
    span = high - low
    return bool(((values > 0) & (values > low - span) & (values < high + span)).all())


# -- 1. the data's own calendar ----------------------------------------------------------------
def test_calendar_of_weekday_data_with_missing_holidays(daily):
    with warnings.catch_warnings():  # (pandas 3: "pandas 4 returns an offset")
        warnings.simplefilter("ignore")
        assert pd.infer_freq(daily["ds"]) is None  # pandas gives up: holidays are missing too
    calendar = timeseries_calendar.infer(daily["ds"])
    assert calendar.freq == "B" and calendar.season == 5 and calendar.days == (0, 1, 2, 3, 4)
    after = calendar.after(daily["ds"].max(), 10)
    assert len(after) == 10 and after.min() > daily["ds"].max() and (after.day_of_week < 5).all()
    assert timeseries_calendar.Calendar.from_json(json.loads(json.dumps(calendar.to_json()))) == calendar


def test_calendar_of_office_hours_and_other_steps(daytime):
    calendar = timeseries_calendar.infer(daytime["ds"])
    assert calendar.freq == "h" and calendar.hours == tuple(range(6, 22)) and calendar.season == 16
    assert "06:00-21:00" in calendar.describe()
    office = pd.Series(pd.date_range("2021-01-04", periods=24 * 7 * 5, freq="h"))
    office = office[(office.dt.day_of_week < 5) & office.dt.hour.between(9, 16)]
    calendar = timeseries_calendar.infer(office)
    assert calendar.days == (0, 1, 2, 3, 4) and calendar.hours == tuple(range(9, 17)) and calendar.season == 8
    ahead = calendar.after(office.max(), 12)  # Friday 16:00 -> Monday 9:00..16:00, Tuesday 9:00..12:00
    assert ahead[0] == pd.Timestamp("2021-02-08 09:00") and ahead[-1] == pd.Timestamp("2021-02-09 12:00")

    def months(freq, drop=()):
        return pd.Series(pd.date_range("2015-01-01", periods=48, freq=freq).delete(list(drop)))

    for freq in ("MS", "ME"):
        for gaps in ((), (5, 17)):
            calendar = timeseries_calendar.infer(months(freq, gaps))
            assert calendar == timeseries_calendar.Calendar(freq, season=12), (freq, gaps)  # no day/hour filter
    assert timeseries_calendar.infer(months("MS"), "D") == timeseries_calendar.given("D")  # given: as is
    assert timeseries_calendar.infer(pd.Series(pd.date_range("2020-01-05", periods=30, freq="W"))).season == 52
    with_holes = pd.Series(pd.date_range("2020-01-01", periods=60, freq="D")).drop([3, 10, 11])
    assert timeseries_calendar.infer(with_holes) == timeseries_calendar.given("D")  # all weekdays occur
    assert timeseries_calendar.infer(with_holes).season == 7


@pytest.mark.parametrize("config", [QUICKSTART, DEFAULT], ids=["multiplicative", "additive"])
def test_default_forecast_of_weekday_data_has_no_weekends(daily, config):
    experiment, evaluation = fit(config, daily)
    ahead = experiment.predict(None)
    assert len(ahead) == 30 and ahead["ds"].min() > daily["ds"].max()
    assert (ahead["ds"].dt.day_of_week < 5).all()
    assert ahead["ds"].tolist() == pd.bdate_range(daily["ds"].max(), periods=31)[1:].tolist()
    assert reachable(ahead["yhat"], daily["y"]), ahead["yhat"].describe()
    future = evaluation.frame.iloc[len(daily):]  # the figures' forecast: the same dates
    assert future["ds"].tolist() == ahead["ds"].tolist()
    assert experiment.learned["calendar"] == {"freq": "B", "weekdays": None, "hours": None, "season": 5}
    if config is QUICKSTART:  # what it was: weekends swing far outside the data, signs flip
        weekends = experiment.predict(pd.DataFrame({"ds": pd.date_range(ahead["ds"].min(), periods=42)}))
        assert not reachable(weekends["yhat"], daily["y"])


def test_default_forecast_of_hourly_data_without_nights(daytime):
    config = {"setup": {"target": "temp_f"}, "create_model": {"model_type": "Prophet", "params": {
        "seasonality_mode": "multiplicative", "uncertainty_samples": 200}}, "forecast": {"horizon": 40}}
    experiment, _ = fit(config, daytime)
    ahead = experiment.predict(None)
    assert len(ahead) == 40 and ahead["ds"].dt.hour.between(6, 21).all()
    assert ahead["ds"].dt.hour.tolist()[:18] == [*range(6, 22), 6, 7]
    assert reachable(ahead["yhat"], daytime["temp_f"])


def test_given_freq_is_respected_and_calendar_survives_a_reload(daily):
    experiment, _ = fit(with_(DEFAULT, forecast={"horizon": 14, "freq": "D"}), daily)
    assert (experiment.predict(None)["ds"].diff().dropna() == pd.Timedelta(days=1)).all()  # weekends too
    experiment, _ = fit(with_(DEFAULT, forecast={"horizon": 14}), daily)
    restored = TimeSeriesExperiment(experiment.config)  # what records.restore does, minus MLflow
    restored.model, restored.learned = experiment.model, json.loads(json.dumps(experiment.learned))
    assert restored.predict(None)["ds"].tolist() == experiment.predict(None)["ds"].tolist()
    restored.learned = {k: v for k, v in restored.learned.items() if k != "calendar"}  # a run from before
    assert len(restored.predict(None)) == 14


def test_components_axes_read_as_percent_and_skip_unseen_days(daily):
    experiment, evaluation = fit(QUICKSTART, daily)
    figure = experiment.figures(daily, evaluation, None)["components"]
    formats = [axis.tickformat for axis in figure.select_yaxes()]
    assert "%" not in formats and "+~%" in formats  # "+20%", not "200.000000%"
    weekly = next(t for t in figure.data if t.name == "weekly")
    days = pd.DatetimeIndex(pd.to_datetime(np.asarray(weekly.x))).day_of_week
    values = np.asarray(weekly.y, dtype=float)
    assert np.isnan(values[days >= 5]).all() and np.isfinite(values[days < 5]).all()


# -- 2. anomaly defaults ---------------------------------------------------------------------
def test_anomaly_config_defaults_and_false_alarm_rate():
    config = TimeSeriesExperiment.parse_config(DEFAULT)
    assert config["anomaly"]["rule"] == "interval" and config["anomaly"]["interval_width"] == 0.99
    assert config["anomaly"]["k"] is None and residual_k(config["anomaly"]) == pytest.approx(2.5758, abs=1e-4)
    assert TimeSeriesExperiment.expected_false_alarm_rate(DEFAULT) == pytest.approx(0.01)
    wider = with_(DEFAULT, anomaly={"rule": "residual", "interval_width": 0.95})
    assert residual_k(TimeSeriesExperiment.parse_config(wider)["anomaly"]) == pytest.approx(1.96, abs=1e-3)
    assert TimeSeriesExperiment.expected_false_alarm_rate(wider) == pytest.approx(0.05)
    explicit = with_(DEFAULT, anomaly={"rule": "residual", "k": 3})
    assert TimeSeriesExperiment.expected_false_alarm_rate(explicit) == pytest.approx(0.0027, abs=1e-4)
    for bad in (0, 1, 1.5, "wide"):
        with pytest.raises(InvalidConfig, match="anomaly.interval_width"):
            TimeSeriesExperiment.parse_config(with_(DEFAULT, anomaly={"interval_width": bad}))
    assert TimeSeriesExperiment.parse_config(explicit)["anomaly"]["k"] == 3.0
    # a parsed config edited later (a form): the default k follows the new width
    edited = TimeSeriesExperiment.parse_config(wider)
    edited["anomaly"]["interval_width"] = 0.999
    assert TimeSeriesExperiment.expected_false_alarm_rate(edited) == pytest.approx(0.001)


@pytest.mark.parametrize("config", [DEFAULT, QUICKSTART], ids=["additive", "multiplicative"])
def test_clean_data_flags_about_one_percent_and_spikes_are_caught(daily, config):
    experiment, evaluation = fit(config, daily)
    frame = evaluation.frame.iloc[: len(daily)]
    assert frame["anomaly"].mean() <= 0.02 and evaluation.metrics["anomaly_rate"] <= 0.02
    assert {"anomaly_lower", "anomaly_upper"} <= set(frame.columns)
    # the forecast interval (80 %) stays what Prophet says; the anomaly band is the wider one
    assert (frame["anomaly_lower"] < frame["yhat_lower"]).all() and (frame["anomaly_upper"] > frame["yhat_upper"]).all()
    assert 0.7 < evaluation.metrics["coverage"] < 0.9

    sd = experiment.learned["residual_std"]
    rows = np.random.default_rng(1).choice(np.arange(20, len(daily) - 20), size=10, replace=False)
    spiked = daily.copy()
    spiked.loc[rows, "y"] += 6 * sd * np.where(np.arange(10) % 2, 1, -1)
    _, evaluation = fit(config, spiked)
    flagged = evaluation.frame.iloc[: len(daily)]["anomaly"].to_numpy()
    assert flagged[rows].sum() >= 9
    assert flagged.sum() - flagged[rows].sum() <= 0.02 * len(daily)  # and few others


def test_old_band_is_a_setting_away(daily):
    """anomaly.interval_width equal to Prophet's interval_width flags exactly outside its interval."""
    experiment, evaluation = fit(with_(DEFAULT, anomaly={"interval_width": 0.8}), daily)
    frame = evaluation.frame.iloc[: len(daily)]
    outside = (frame["y"] < frame["yhat_lower"]) | (frame["y"] > frame["yhat_upper"])
    assert (frame["anomaly"] == outside).all() and 0.1 < frame["anomaly"].mean() < 0.3


def test_residual_rule_and_no_uncertainty_samples(daily):
    experiment, evaluation = fit(with_(DEFAULT, anomaly={"rule": "residual"}), daily)
    frame = evaluation.frame.iloc[: len(daily)]
    k, sd = residual_k(experiment.config["anomaly"]), experiment.learned["residual_std"]
    assert k == pytest.approx(2.5758, abs=1e-4)
    assert ((frame["y"] - frame["yhat"]).abs() > k * sd).eq(frame["anomaly"]).all()
    config = with_(DEFAULT, create_model={"model_type": "Prophet", "params": {"uncertainty_samples": 0}})
    experiment, evaluation = fit(config, daily)
    assert evaluation.metrics["anomaly_rate"] <= 0.02  # the band from the residual SD: no interval to widen
    assert "coverage" not in evaluation.metrics
    figures = experiment.figures(daily, evaluation, None)
    assert [t.name for t in figures["forecast"].data][:2] == ["forecast", "actual (training)"]
    assert "anomaly band (99%)" in figures["anomalies"].layout.title.text


# -- 3. backtests ------------------------------------------------------------------------------
def prophet_reference(model, table: pd.DataFrame) -> pd.DataFrame:
    """``prophet.diagnostics.cross_validation`` on our cutoffs, one call per fold (the horizon in
    time differs between folds when the calendar skips weekends and holidays)."""
    from prophet.diagnostics import cross_validation

    parts = []
    for cutoff, rows in table.groupby("cutoff", sort=True):
        parts.append(cross_validation(model, horizon=rows["ds"].max() - cutoff, cutoffs=[cutoff],
                                      disable_tqdm=True))
    return pd.concat(parts, ignore_index=True)


def test_backtest_matches_prophet_cross_validation(daily):
    from prophet.diagnostics import performance_metrics

    config = with_(QUICKSTART, evaluate={"horizon": 10, "folds": 3})
    stages = []
    experiment, evaluation = fit(config, daily, lambda stage, fraction: stages.append((stage, fraction)))
    table, m = evaluation.backtest, evaluation.metrics
    assert list(table.columns) == list(timeseries_backtest.TABLE_COLUMNS)
    assert len(table) == 30 and sorted(table["fold"].unique()) == [1, 2, 3]
    assert table["step"].tolist() == list(range(1, 11)) * 3
    # fold k fits on the rows before n - k*H and forecasts the next H rows
    for k in (1, 2, 3):
        fold = table[table["fold"] == k]
        start = len(daily) - k * 10
        assert fold["cutoff"].iloc[0] == daily["ds"].iloc[start - 1]
        assert fold["ds"].tolist() == daily["ds"].iloc[start:start + 10].tolist()
    backtest = [f for s, f in stages if s == "backtest"]
    assert len(backtest) == 3 and backtest == sorted(backtest)

    reference = prophet_reference(experiment.model, table)
    ours = table.sort_values(["cutoff", "ds"]).reset_index(drop=True)
    assert reference["ds"].tolist() == ours["ds"].tolist()
    np.testing.assert_allclose(ours["yhat"], reference["yhat"], rtol=1e-6)
    expected = performance_metrics(reference, rolling_window=1).iloc[-1]
    for name in ("mae", "rmse", "mape", "smape"):
        assert m[f"cv_{name}"] == pytest.approx(expected[name], rel=1e-6), name
    assert m["cv_coverage"] == pytest.approx(expected["coverage"], abs=0.1)  # sampled intervals

    assert {"baseline_cv_mae", "baseline_cv_rmse", "baseline_cv_mape", "baseline_cv_smape", "baseline_cv_mase",
            "baseline_cv_coverage", "cv_mase", "cv_rel_mae"} <= set(m)
    assert m["cv_rel_mae"] == pytest.approx(m["cv_mae"] / m["baseline_cv_mae"])
    assert m["mae"] < m["cv_mae"]  # in-sample flatters
    json.dumps(m, allow_nan=False)


FOLDS_IN_PROCESSES = """
import json, os, sys, threading
import pandas as pd
from experimenthub import datasets
from experimenthub.experiments import timeseries_backtest
from experimenthub.experiments.time_series import TimeSeriesExperiment, seeded_predict

assert threading.active_count() == 1  # as in a job of the worker server: forking is safe
config = {"setup": {"target": "y"}, "create_model": {"model_type": "Prophet", "params": {}},
          "forecast": {"horizon": 10}}
experiment = TimeSeriesExperiment(config)
experiment.fit(experiment.validate_data(datasets.load("prophet_daily")), lambda *_: None)
pids, progress = sys.argv[1], []

def predict(model, rows):
    with open(pids, "a") as out:
        out.write(f"{os.getpid()}\\n")
    return seeded_predict(model, rows, 0)

tables = {}
for workers in (1, 2):
    tables[workers], metrics = timeseries_backtest.run(experiment.model, 10, 3, 5, predict,
                                                       lambda stage, f: progress.append(f), workers=workers)
pd.testing.assert_frame_equal(tables[1], tables[2])
print(json.dumps({"parent": os.getpid(), "progress": progress, "metrics": metrics}))
"""


def test_backtest_folds_in_forked_processes_equal_the_folds_one_after_another(tmp_path):
    import os
    import subprocess
    import sys

    pids = tmp_path / "pids"
    out = subprocess.run([sys.executable, "-c", FOLDS_IN_PROCESSES, str(pids)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    seen = [int(line) for line in pids.read_text().split()]
    serial, forked = seen[:3], seen[3:]
    assert set(serial) == {result["parent"]}  # workers=1: in the process itself
    assert len(forked) == 3 and result["parent"] not in forked  # workers=2: in forked children
    assert result["progress"][3:] == pytest.approx([1 / 3, 2 / 3, 1.0])  # a report per fold as it ends
    assert "cv_mae" in result["metrics"]


def test_backtest_of_logistic_growth_matches_prophet(daily):
    """Prophet's history frame carries a 'floor' column: a fold's copy fitted on it learns a floor
    (so it must be given one to predict), as in cross_validation."""
    data = daily.tail(150).assign(cap=80.0)
    config = {"create_model": {"model_type": "Prophet", "params": {"growth": "logistic", "uncertainty_samples": 50}},
              "evaluate": {"horizon": 5, "folds": 2}}
    experiment, evaluation = fit(config, data)
    reference = prophet_reference(experiment.model, evaluation.backtest)
    np.testing.assert_allclose(evaluation.backtest.sort_values(["cutoff", "ds"])["yhat"], reference["yhat"],
                               rtol=1e-6)


def test_backtest_folds_skip_the_nights(daytime):
    config = {"setup": {"target": "temp_f"}, "create_model": {"model_type": "Prophet", "params": {
        "uncertainty_samples": 100}}, "evaluate": {"horizon": 16, "folds": 2}}
    experiment, evaluation = fit(config, daytime)
    table = evaluation.backtest
    assert table["ds"].dt.hour.between(6, 21).all() and len(table) == 32
    assert experiment.learned["calendar"]["season"] == 16
    # season 16 rows (one day): the baseline repeats the last day of each fold's training rows
    last_fold = table[table["fold"] == 1]
    assert last_fold["baseline"].tolist() == daytime["temp_f"].iloc[-32:-16].tolist()


def test_seasonal_naive_baseline_by_hand():
    """A small series whose baseline errors are easy to write down: season 3, two folds of 2."""
    y = [10.0, 20.0, 30.0, 11.0, 21.0, 31.0, 12.0, 22.0, 32.0, 14.0, 25.0, 33.0, 15.0, 20.0]
    data = pd.DataFrame({"ds": pd.date_range("2021-01-01", periods=len(y), freq="D"), "y": y})
    config = {"create_model": {"model_type": "Prophet", "params": {"uncertainty_samples": 0}},
              "evaluate": {"horizon": 2, "folds": 2, "seasonality": 3}}
    _, evaluation = fit(config, data)
    table, m = evaluation.backtest, evaluation.metrics
    # fold 2: trained on y[:10] (... 12, 22, 32, 14), forecasts rows 10, 11 from one season back
    # fold 1: trained on y[:12] (... 14, 25, 33), forecasts rows 12, 13
    assert table["baseline"].tolist() == [22.0, 32.0, 14.0, 25.0]
    assert table["y"].tolist() == [25.0, 33.0, 15.0, 20.0]
    errors = np.array([3.0, 1.0, 1.0, -5.0])
    assert m["baseline_cv_mae"] == pytest.approx(np.abs(errors).mean())
    assert m["baseline_cv_rmse"] == pytest.approx(math.sqrt((errors ** 2).mean()))
    assert m["baseline_cv_mape"] == pytest.approx(np.mean(np.abs(errors) / [25, 33, 15, 20]))
    # MASE: each fold's errors over its in-sample one-season-back MAE
    scale2 = np.mean([abs(y[t] - y[t - 3]) for t in range(3, 10)])
    scale1 = np.mean([abs(y[t] - y[t - 3]) for t in range(3, 12)])
    assert m["baseline_cv_mase"] == pytest.approx(np.mean([3 / scale2, 1 / scale2, 1 / scale1, 5 / scale1]))
    assert "cv_coverage" not in m and "baseline_cv_coverage" in m  # no samples: no interval
    assert table["yhat_lower"].isna().all()


def test_seasonal_naive_steps_past_one_season():
    naive, lower, upper, scale = timeseries_backtest.seasonal_naive([1, 2, 3, 4, 5], 5, 2, 0.8)
    assert naive.tolist() == [4, 5, 4, 5, 4]  # the last season, repeated
    assert scale == 2.0
    widths = upper - naive
    assert widths[2] == pytest.approx(widths[0] * math.sqrt(2))  # one season further: sqrt(2) wider
    naive, *_ = timeseries_backtest.seasonal_naive([1, 2, 3], 3, 1, 0.8)
    assert naive.tolist() == [3, 3, 3]


def test_metrics_that_cannot_be_computed_are_absent(daily):
    data = daily.assign(y=lambda d: d["y"] - d["y"].iloc[-5])  # a zero among the last rows
    _, evaluation = fit(with_(DEFAULT, evaluate={"horizon": 5, "folds": 2}), data)
    m = evaluation.metrics
    assert "cv_mape" not in m and "baseline_cv_mape" not in m and "cv_smape" in m
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    json.dumps(m, allow_nan=False)


def test_no_evaluate_section_means_no_backtest(daily):
    assert "evaluate" not in TimeSeriesExperiment.parse_config(DEFAULT)
    assert "evaluate" not in TimeSeriesExperiment.parse_config(with_(DEFAULT, evaluate={}))
    assert "evaluate" not in TimeSeriesExperiment.parse_config(with_(DEFAULT, evaluate=None))
    parsed = TimeSeriesExperiment.parse_config(with_(DEFAULT, forecast={"horizon": 12}, evaluate={"folds": 4}))
    assert parsed["evaluate"] == {"horizon": 12, "folds": 4, "seasonality": None, "workers": 1}
    _, evaluation = fit(DEFAULT, daily.tail(60))
    assert evaluation.backtest is None and not any(k.startswith(("cv_", "baseline_")) for k in evaluation.metrics)


@pytest.mark.parametrize(("section", "key", "words"), [
    ({"horizon": 0}, "evaluate.horizon", "between"),
    ({"horizon": 2.5}, "evaluate.horizon", "integer"),
    ({"folds": 0}, "evaluate.folds", "between"),
    ({"seasonality": 0}, "evaluate.seasonality", "between"),
    ({"cutoffs": 3}, "evaluate.cutoffs", "allowed keys"),
    ([1, 2], "evaluate", "mapping"),
])
def test_evaluate_config_errors_name_the_key(section, key, words):
    with pytest.raises(InvalidConfig, match=words) as info:
        TimeSeriesExperiment.parse_config(with_(DEFAULT, evaluate=section))
    assert info.value.key == key
    with pytest.raises(InvalidConfig, match="no default") as info:
        TimeSeriesExperiment.parse_config(with_(DEFAULT, forecast={"horizon": 0}, evaluate={"folds": 2}))
    assert info.value.key == "evaluate.horizon"


def test_backtest_too_long_for_the_data_says_how_many_rows(daily):
    experiment = TimeSeriesExperiment(with_(DEFAULT, evaluate={"horizon": 30, "folds": 2}))
    with pytest.raises(InvalidConfig, match=r"at least 70 rows .* has 40") as info:
        experiment.validate_data(daily.head(40))
    assert info.value.key == "evaluate.horizon"
    experiment.validate_data(daily.head(70))  # just enough: 2 x 30 and 10 to fit the first fold on
