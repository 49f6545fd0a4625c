"""fault_detection on the Tennessee Eastman Process benchmark (Braatz d00 / d00_te / d01_te).

Data: experimenthub/datasets/tep_*.csv (see SOURCES.md there). Normal training run of 25 h,
an independent 48 h normal test run, and a 48 h run with fault IDV(1) from row 160 (``fault``).
No mocks: real scikit-learn, SciPy, Plotly and MLflow.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scipy import stats

import experimenthub
from experimenthub.errors import DataError, InvalidConfig, NoData, NotReady
from experimenthub.experiments.base import ParamSpec
from experimenthub.experiments.fault_detection import FaultDetectionExperiment, PCAMonitor

DATA = Path(experimenthub.__file__).parent / "datasets"
MODELS = FaultDetectionExperiment.model_types
DEFAULT = {"setup": {}, "create_model": {"model_type": "PCA", "params": {}}}


def noop(stage: str, fraction: float) -> None:
    pass


@pytest.fixture(scope="module")
def tep() -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(DATA / f"tep_{name}.csv")
            for name in ("normal_train", "normal_test", "idv01_test")}


@pytest.fixture(scope="module")
def features(tep) -> list[str]:
    return [c for c in tep["normal_train"].columns if c.startswith(("xmeas_", "xmv_"))]


def experiment(model_type: str = "PCA", params: dict | None = None, **sections) -> FaultDetectionExperiment:
    return FaultDetectionExperiment({"setup": sections.pop("setup", {}),
                                     "create_model": {"model_type": model_type, "params": params or {}},
                                     **sections})


@pytest.fixture(scope="module")
def fitted(tep) -> dict[str, tuple[FaultDetectionExperiment, object]]:
    """Each model type fitted once on the normal training run."""
    out = {}
    for model_type in MODELS:
        exp = experiment(model_type)
        out[model_type] = (exp, exp.fit(exp.validate_data(tep["normal_train"]), noop))
    return out


def rates(pred: pd.DataFrame, fault: pd.Series) -> tuple[float, float]:
    """(false alarm rate on fault == 0, detection rate on fault == 1)."""
    flagged = pred["anomaly"].to_numpy()
    return flagged[fault.to_numpy() == 0].mean(), flagged[fault.to_numpy() == 1].mean()


# -- the seed's default config and the monitoring statistics ------------------------------------
def test_default_config_fits_and_detects_idv1(tep, fitted):
    exp, evaluation = fitted["PCA"]
    assert exp.config["create_model"]["params"] == {"n_components": 0.9, "confidence": 0.99}
    assert exp.config["anomaly"] == {"rule": "either"} and exp.config["retrain"] is None
    columns = ["ds", "t2", "t2_limit", "spe", "spe_limit", "anomaly", "pc1", "pc2"]
    assert list(evaluation.frame.columns) == columns
    assert len(evaluation.frame) == 500 and evaluation.frame["anomaly"].dtype == bool
    m = evaluation.metrics
    assert 1 <= m["n_components"] < 52 and 0.9 <= m["explained_variance"] < 1
    assert m["anomaly_rate"] <= 0.02  # in-sample, limits at 99 %

    pred = exp.predict(tep["idv01_test"])
    assert len(pred) == 960 and pd.api.types.is_datetime64_any_dtype(pred["ds"])
    _, detection = rates(pred, tep["idv01_test"]["fault"])
    assert detection > 0.99  # published for IDV(1): T² 0.992, SPE 0.998 (Chiang et al. 2001)
    flagged = pred[pred["anomaly"]]
    assert flagged["top_contributors"].map(lambda s: len(s.split(", ")) == 3).all()
    assert pred.loc[~pred["anomaly"], "top_contributors"].isna().all()
    json.dumps(pred.to_dict(orient="records"), default=str)  # JSON friendly
    # IDV(1) steps the A/C feed ratio of stream 4: its flow / valve lead the contributions
    late = flagged["top_contributors"].loc[400:].str.split(", ").explode().value_counts()
    assert {"xmeas_4", "xmv_4", "xmeas_1", "xmv_3"} & set(late.index[:5])


def test_false_alarm_rate_on_held_out_normal_data(tep, features):
    """A random hold-out of normal operation (the i.i.d. case the limits assume): the 'either' alarm
    (each limit at sqrt(0.99)) stays near its nominal rate of 1 %."""
    pooled = pd.concat([tep["normal_train"], tep["normal_test"]], ignore_index=True)[features]
    pooled = pooled.sample(frac=1.0, random_state=0)
    exp = experiment()
    exp.fit(pooled.iloc[:1000], noop)
    held_out = exp.predict(pooled.iloc[1000:])
    assert held_out["anomaly"].mean() < 2 * 0.01
    assert (held_out["t2"] > held_out["t2_limit"]).mean() < 2 * 0.01


def test_false_alarm_rate_chronological_split_defaults(tep):
    """Train on the 25 h normal run, test on the independent 48 h run: the process drifts beyond
    what the training run saw, so the rate rises above nominal but stays a few percent (out-of-fold
    SPE limits; in-sample Jackson-Mudholkar limits gave 15 % here)."""
    exp = experiment()
    exp.fit(tep["normal_train"], noop)
    assert exp.predict(tep["normal_test"])["anomaly"].mean() < 0.05
    faulty = exp.predict(tep["idv01_test"])
    before = tep["idv01_test"]["fault"] == 0
    assert faulty.loc[before, "anomaly"].mean() < 0.03 and faulty.loc[~before, "anomaly"].mean() > 0.99


def test_false_alarm_rate_chronological_split_9_components(tep):
    """The benchmark's own split (train 25 h, test the next independent 48 h run) with the
    literature's 9 PCs. T² is near nominal; SPE runs above it because the short training run
    does not cover all normal variability (SOURCES.md: T² 2.1 %, SPE 5.2 %)."""
    exp = experiment(params={"n_components": 9}, setup={"label": "fault"})
    exp.fit(tep["normal_train"].assign(fault=0), noop)
    normal = exp.predict(tep["normal_test"])
    assert (normal["t2"] > normal["t2_limit"]).mean() < 3 * 0.01
    assert (normal["spe"] > normal["spe_limit"]).mean() < 6 * 0.01
    faulty = exp.predict(tep["idv01_test"])
    assert "fault" in faulty.columns  # the label column is kept
    assert rates(faulty, tep["idv01_test"]["fault"])[1] > 0.99


def test_label_metrics(tep, features):
    faulty = tep["idv01_test"].iloc[300:340]
    data = pd.concat([tep["normal_train"].assign(fault=0), faulty], ignore_index=True)
    exp = experiment(setup={"target": "fault", "features": features})  # 'target' is an alias of label
    assert exp.config["setup"]["label"] == "fault"
    evaluation = exp.fit(data, noop)
    m, frame = evaluation.metrics, evaluation.frame
    assert {"precision", "recall", "f1", "false_alarm_rate", "detection_rate"} <= set(m)
    false_alarm, detection = rates(frame, frame["fault"])
    assert m["false_alarm_rate"] == false_alarm and m["detection_rate"] == detection == m["recall"]
    assert m["precision"] == frame.loc[frame["anomaly"], "fault"].mean()
    assert m["f1"] == pytest.approx(2 * m["precision"] * m["recall"] / (m["precision"] + m["recall"]))
    # the label is for metrics only: the faulty rows are part of the fit (and partly absorbed by it)
    assert 0 < detection < 1


@pytest.mark.parametrize("model_type", MODELS[1:])
def test_other_models_fit_and_predict(tep, fitted, model_type):
    exp, evaluation = fitted[model_type]
    assert list(evaluation.frame.columns) == ["ds", "score", "score_limit", "anomaly"]
    # the limit is the 99 % quantile of out-of-fold training scores: few in-sample alarms
    assert evaluation.metrics["anomaly_rate"] <= 0.015
    pred = exp.predict(tep["idv01_test"].assign(extra="ignored"))
    assert list(pred.columns) == ["ds", "score", "score_limit", "anomaly"]
    assert (pred["anomaly"] == (pred["score"] > pred["score_limit"])).all()
    assert rates(pred, tep["idv01_test"]["fault"])[1] > 0.9


def test_pca_monitor_statistics(tep, features):
    train = tep["normal_train"][features].to_numpy()
    x = (train - train.mean(0)) / train.std(0)
    mon = PCAMonitor(n_components=5, confidence=0.95, rule="t2").fit(x)
    n, a = x.shape[0], 5
    expected = a * (n - 1) * (n + 1) / (n * (n - a)) * stats.f.ppf(0.95, a, n - a)
    assert mon.t2_limit_ == pytest.approx(expected)
    assert mon.spe_limit_method_ == "moments of out-of-fold SPE"
    either = PCAMonitor(n_components=5, confidence=0.95).fit(x)  # each limit at sqrt(0.95)
    assert either.t2_limit_ == pytest.approx(
        a * (n - 1) * (n + 1) / (n * (n - a)) * stats.f.ppf(0.95 ** 0.5, a, n - a))
    tiny = PCAMonitor(n_components=5, rule="spe").fit(x[:12])  # too few rows to cross-validate
    assert tiny.spe_limit_method_ in ("jackson-mudholkar", "box")
    new = tep["idv01_test"][features].to_numpy()[:50]
    new = (new - train.mean(0)) / train.std(0)
    np.testing.assert_allclose(mon.spe_contributions(new).sum(1), mon.spe(new))
    np.testing.assert_allclose(mon.t2_contributions(new).sum(1), mon.t2(new))
    assert set(mon.predict(new)) <= {-1, 1}
    assert ((mon.decision_function(new) < 0) == (mon.predict(new) == -1)).all()
    t2_rule = mon.set_params(rule="t2").predict(new) == -1
    assert (t2_rule == (mon.t2(new) > mon.t2_limit_)).all()


def test_pca_monitor_passes_sklearn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    reason = "a control limit at 99 % legitimately flags none of the checks' blob data"
    expected = {"check_outliers_train": reason, "check_outliers_fit_predict": reason}
    check_estimator(PCAMonitor(), expected_failed_checks=expected)


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("config", "key", "words"), [
    ({"create_model": {"model_type": "PCAX"}}, "create_model.model_type", ["IsolationForest", "PCA"]),
    ({"create_model": {"model_type": "PCA", "params": {"alpha": 1}}}, "create_model.params.alpha",
     ["n_components", "confidence"]),
    ({"create_model": {"model_type": "IsolationForest", "params": {"trees": 5}}}, "create_model.params.trees",
     ["n_estimators", "contamination", "confidence"]),
    ({"create_model": {"model_type": "IsolationForest", "params": {"n_estimators": -1}}},
     "create_model.params.n_estimators", ["n_estimators"]),
    ({"create_model": {"model_type": "LocalOutlierFactor", "params": {"novelty": False}}},
     "create_model.params.novelty", ["novelty=True"]),
    ({"create_model": {"model_type": "EllipticEnvelope",
                       "params": {"contamination": 0.05, "confidence": 0.9}}},
     "create_model.params.contamination", ["confidence"]),
    ({"create_model": {"model_type": "PCA", "params": {"n_components": 1.5}}},
     "create_model.params.n_components", ["(0, 1)"]),
    ({"create_model": {"model_type": "PCA", "params": {"confidence": 1}}},
     "create_model.params.confidence", ["between 0 and 1"]),
    ({"setup": {"missing": "fill"}}, "setup.missing", ["'drop'", "'interpolate'"]),
    ({"setup": {"feature": ["a"]}}, "setup.feature", ["features", "label"]),
    ({"setup": {"features": "xmeas_1"}}, "setup.features", ["list"]),
    ({"setup": {"label": "a", "target": "b"}}, "setup.target", ["alias"]),
    ({"anomaly": {"rule": "t3"}}, "anomaly.rule", ["'either'", "'both'"]),
    ({"create_model": {"model_type": "IsolationForest"}, "anomaly": {"rule": "spe"}},
     "anomaly.rule", ["PCA"]),
    ({"retrain": {"metric": "rmse", "threshold": 0.1}}, "retrain.metric", ["anomaly_rate"]),
    ({"forecast": {"horizon": 3}}, "forecast.horizon", []),
])
def test_invalid_config_names_the_key(config, key, words):
    with pytest.raises(InvalidConfig) as info:
        FaultDetectionExperiment({"setup": {}, **config})
    assert info.value.key == key and key in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_config_not_a_mapping():
    with pytest.raises(InvalidConfig, match="mapping"):
        FaultDetectionExperiment(["PCA"])


def test_config_normalisation():
    assert experiment(params={"n_components": 4.0}).config["create_model"]["params"]["n_components"] == 4
    iso = experiment("IsolationForest").config["create_model"]["params"]
    assert iso == {"confidence": 0.99, "random_state": 0}
    lof = experiment("LocalOutlierFactor", {"contamination": 0.02}).config["create_model"]["params"]
    assert lof == {"contamination": 0.02, "novelty": True}  # the estimator's own threshold
    policy = experiment(retrain={"threshold": 0.1}).config["retrain"]
    assert policy["metric"] == "anomaly_rate" and policy["threshold"] == 0.1
    assert experiment().tracking_params()["params.n_components"] == 0.9
    for exp in (experiment(setup={"target": "fault"}, retrain={"threshold": 0.1}),
                experiment("IsolationForest"),
                experiment("LocalOutlierFactor", {"contamination": 0.02, "n_neighbors": 10})):
        # the hub stores the normalised config and parses it again when it reloads a run
        assert FaultDetectionExperiment.parse_config(json.loads(json.dumps(exp.config))) == exp.config


def test_bad_data_raises_documented_errors(tep, features):
    train = tep["normal_train"]
    exp = experiment(setup={"features": features})
    with pytest.raises(NoData, match="0 rows"):
        exp.validate_data(train.iloc[0:0])
    with pytest.raises(DataError, match=r"'xmeas_99'.*available columns: ds, xmeas_1") as info:
        experiment(setup={"features": ["xmeas_1", "xmeas_99"]}).validate_data(train)
    assert info.value.column == "xmeas_99"
    with pytest.raises(DataError, match=r"'xmeas_2' is not numeric.*dtype") as info:
        exp.validate_data(train.assign(xmeas_2=train["xmeas_2"].astype(str) + " kg/h"))
    assert info.value.column == "xmeas_2"
    with pytest.raises(DataError, match=r"'ds'.*timestamps.*'yesterday'") as info:
        exp.validate_data(train.assign(ds=train["ds"].where(train.index != 7, "yesterday")))
    assert info.value.column == "ds"
    with pytest.raises(DataError, match="'xmv_3' has 1 infinite"):
        exp.validate_data(train.assign(xmv_3=train["xmv_3"].where(train.index != 3, np.inf)))
    with pytest.raises(DataError, match="label column 'fault'"):
        experiment(setup={"label": "fault"}).validate_data(train)
    with pytest.raises(DataError, match="at least 12 rows"):
        experiment(params={"n_components": 10}).validate_data(train.iloc[:11])
    with pytest.raises(InvalidConfig) as info:
        experiment(params={"n_components": 60}).validate_data(train)
    assert info.value.key == "create_model.params.n_components"


def test_missing_values_policy(tep):
    gappy = tep["normal_train"].copy()
    gappy.loc[[5, 6, 9], "xmeas_7"] = np.nan
    gappy.loc[[0], "xmv_2"] = np.nan
    with pytest.raises(DataError, match=r"'xmeas_7' \(3 missing\), 'xmv_2' \(1 missing\).*'drop'") as info:
        experiment().validate_data(gappy)
    assert info.value.column == "xmeas_7"
    assert len(experiment(setup={"missing": "drop"}).validate_data(gappy)) == 496
    filled = experiment(setup={"missing": "interpolate"}).validate_data(gappy)
    assert len(filled) == 500 and not filled["xmeas_7"].isna().any()
    before, after = gappy.loc[4, "xmeas_7"], gappy.loc[7, "xmeas_7"]
    assert filled.loc[5, "xmeas_7"] == pytest.approx((2 * before + after) / 3)  # linear, in row order
    assert pd.api.types.is_datetime64_any_dtype(filled["ds"])


def test_predict_errors(tep, fitted):
    exp, _ = fitted["PCA"]
    with pytest.raises(NoData, match="fault_detection needs rows to predict on; pass data or publish"):
        exp.predict(None)
    with pytest.raises(DataError, match="'xmv_11'") as info:
        exp.predict(tep["normal_test"].drop(columns=["xmv_11"]))
    assert info.value.column == "xmv_11"
    with pytest.raises(NotReady):
        experiment().predict(tep["normal_test"])


# -- retraining, figures, persistence ------------------------------------------------------------
def test_retrain_rows_and_monitor(tep, fitted):
    exp, _ = fitted["PCA"]
    new_rows = tep["idv01_test"].iloc[100:260]  # 60 normal rows, then 100 faulty ones
    pred = exp.predict(new_rows)
    keep = exp.retrain_rows(pred, new_rows)
    assert len(keep) == (~pred["anomaly"]).sum() and keep.index.isin(pred.index[~pred["anomaly"]]).all()
    assert (keep["fault"] == 0).mean() > 0.9
    assert exp.monitor(pred, "anomaly_rate") == pytest.approx(pred["anomaly"].mean())
    assert exp.monitor(pred.iloc[0:0], "anomaly_rate") is None


@pytest.mark.parametrize("model_type", ["PCA", "IsolationForest"])
def test_figures(tep, fitted, model_type):
    exp, evaluation = fitted[model_type]
    for predictions in (None, exp.predict(tep["idv01_test"])):
        figs = exp.figures(tep["normal_train"], evaluation, predictions)
        assert set(figs) == {"control_chart", "anomalies", "contributions"}
        assert all(isinstance(f, go.Figure) and f.to_json() for f in figs.values())
    chart = figs["control_chart"]
    assert len(chart.layout.shapes) == (2 if model_type == "PCA" else 1)  # separators before new samples
    if model_type == "PCA":
        assert [a.text for a in chart.layout.annotations] == ["Hotelling T²", "SPE (Q)"]
    limits = [t for t in chart.data if t.name.endswith("limit")]
    assert limits and all(t.line.dash == "dash" for t in limits)
    assert "flagged training samples" in figs["contributions"].layout.title.text
    with_features = exp.predict(tep["idv01_test"]).join(tep["idv01_test"].drop(columns=["ds", "fault"]))
    title = exp.figures(tep["normal_train"], evaluation, with_features)["contributions"].layout.title.text
    assert "flagged new samples" in title
    eda = exp.eda_figures(tep["normal_train"])
    assert {"correlation", "histogram", "series", "missing", "summary"} <= set(eda)


@pytest.mark.parametrize("model_type", ["PCA", "IsolationForest"])
def test_save_and_load_round_trip(tep, fitted, tmp_path, model_type):
    exp, _ = fitted[model_type]
    exp.save_model(str(tmp_path / "model"))
    fresh = experiment(model_type)
    fresh.load_model(str(tmp_path / "model"))
    pd.testing.assert_frame_equal(fresh.predict(tep["idv01_test"]), exp.predict(tep["idv01_test"]))
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" not in os.environ
    requirements = (tmp_path / "model" / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "skops==" in requirements


@pytest.mark.parametrize("model_type", MODELS)
def test_instances_pickle(tep, fitted, model_type):
    exp, _ = fitted[model_type]
    clone = pickle.loads(pickle.dumps(exp))
    pd.testing.assert_frame_equal(clone.predict(tep["normal_test"]), exp.predict(tep["normal_test"]))
    assert pickle.loads(pickle.dumps(experiment(model_type))).model is None


def test_progress_model_parameters_and_light_import(tep):
    seen = []
    experiment("EllipticEnvelope").fit(tep["normal_train"], lambda stage, f: seen.append((stage, f)))
    assert [s for s, _ in seen][:3] == ["scaling", "fitting", "limits"] and seen[-1][0] == "evaluating"
    assert all(0.15 <= f <= 0.85 for _, f in seen) and [f for _, f in seen] == sorted(f for _, f in seen)

    names = {m: [p.name for p in FaultDetectionExperiment.model_parameters(m)] for m in MODELS}
    assert names["PCA"] == ["n_components", "confidence"]
    assert {"n_estimators", "max_samples", "contamination", "confidence"} <= set(names["IsolationForest"])
    assert {"support_fraction", "contamination"} <= set(names["EllipticEnvelope"])
    assert {"n_neighbors", "contamination"} <= set(names["LocalOutlierFactor"])
    assert FaultDetectionExperiment.model_parameters("Prophet") == []
    specs = FaultDetectionExperiment.model_parameters("PCA")
    assert all(isinstance(p, ParamSpec) for p in specs)
    assert [(p.kind, p.default) for p in specs] == [("float", 0.9), ("float", 0.99)]

    code = ("import sys, experimenthub.experiments.fault_detection; "
            "print(sorted({'numpy', 'pandas', 'sklearn', 'scipy', 'plotly', 'mlflow'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- held-out evaluation (evaluate.holdout) ------------------------------------------------------
@pytest.fixture(scope="module")
def normal_then_fault(tep) -> pd.DataFrame:
    """The normal training run followed by the IDV(1) run (160 normal rows, then the fault): both
    labels in its second part; ``held`` marks the IDV(1) run."""
    return pd.concat([tep["normal_train"].assign(fault=0, held=False), tep["idv01_test"].assign(held=True)],
                     ignore_index=True)


def test_holdout_column_metrics_equal_a_fit_on_the_rest(normal_then_fault, tep):
    exp = experiment(setup={"ds": "ds", "label": "fault"}, evaluate={"holdout": "held"})
    evaluation = exp.fit(exp.validate_data(normal_then_fault), noop)
    m = evaluation.metrics
    # by hand: the same experiment without a holdout, fitted on the normal rows of the rest
    plain = experiment(setup={"ds": "ds"})
    plain.fit(tep["normal_train"], noop)
    alarm = plain.predict(tep["idv01_test"])["anomaly"].to_numpy()
    fault = tep["idv01_test"]["fault"].to_numpy() == 1
    tp, fp, fn, tn = (alarm & fault).sum(), (alarm & ~fault).sum(), (~alarm & fault).sum(), (~alarm & ~fault).sum()
    assert m["holdout_precision"] == pytest.approx(tp / (tp + fp))
    assert m["holdout_recall"] == pytest.approx(tp / (tp + fn)) and m["holdout_recall"] > 0.99
    assert m["holdout_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["holdout_false_alarm_rate"] == pytest.approx(fp / (fp + tn)) and m["holdout_false_alarm_rate"] < 0.05
    first_alarm = np.flatnonzero(alarm[160:])[0]
    assert m["holdout_detection_delay"] == first_alarm and first_alarm <= 10  # IDV(1) is caught within minutes
    assert m["holdout_rows"] == 960
    counts = evaluation.backtest
    assert list(counts.columns) == ["label", "no_alarm", "alarm"]
    assert counts.to_numpy().tolist() == [[0, tn, fp], [1, fn, tp]]
    # in-sample metrics keep their names; the fit on every row absorbs much of the fault
    assert m["recall"] < m["holdout_recall"]
    assert "held" not in exp.model.feature_names_in_
    json.dumps(m, allow_nan=False)


def test_holdout_fraction_from_the_end(normal_then_fault):
    exp = experiment(setup={"ds": "ds", "label": "fault"}, evaluate={"holdout": 0.6})
    evaluation = exp.fit(exp.validate_data(normal_then_fault.drop(columns="held")), noop)
    counts = evaluation.backtest.set_index("label").sum(axis=1)
    assert counts.to_dict() == {0: 76, 1: 800}  # the last 876 rows: 76 normal rows of the IDV(1) run, 800 faulty
    assert evaluation.metrics["holdout_rows"] == 876 and evaluation.metrics["holdout_recall"] > 0.99


def test_holdout_is_refused_without_both_labels_or_a_label(normal_then_fault):
    data = normal_then_fault.drop(columns="held")
    exp = experiment(setup={"ds": "ds", "label": "fault"}, evaluate={"holdout": 0.3})
    with pytest.raises(DataError, match=r"no normal \(0\) label in 'fault' \(0 normal, 438 faulty\)"):
        exp.validate_data(data)
    exp = experiment(setup={"ds": "ds", "label": "fault"}, evaluate={"holdout": 0.1})
    with pytest.raises(DataError, match=r"the last 60 rows .* no faulty \(1\) label"):
        exp.validate_data(normal_then_fault.head(600).drop(columns="held"))  # the fault starts at row 660
    exp = experiment(setup={"ds": "ds", "label": "fault"}, evaluate={"holdout": "held"})
    with pytest.raises(DataError, match="'held' .* not found"):
        exp.validate_data(data)
    with pytest.raises(DataError, match="booleans"):
        exp.validate_data(normal_then_fault.assign(held="yes"))
    with pytest.raises(DataError, match="normal rows"):
        exp.validate_data(normal_then_fault.assign(held=True))
    for evaluate, words in (({"holdout": 0.2}, "setup.label"), ({"holdout": 1.5}, "fraction"),
                            ({"holdout": True}, "fraction"), ({"rows": 3}, "allowed keys")):
        setup = {} if words == "setup.label" else {"label": "fault"}
        with pytest.raises(InvalidConfig, match=words) as info:
            experiment(setup=setup, evaluate=evaluate)
        assert info.value.key.startswith("evaluate")
    with pytest.raises(InvalidConfig, match="feature"):
        experiment(setup={"label": "fault", "features": ["xmeas_1", "held"]}, evaluate={"holdout": "held"})


def test_expected_false_alarm_rate():
    rate = FaultDetectionExperiment.expected_false_alarm_rate
    assert rate(DEFAULT) == pytest.approx(0.01)
    assert rate({"create_model": {"model_type": "PCA", "params": {"confidence": 0.95}}}) == pytest.approx(0.05)
    assert rate({**DEFAULT, "anomaly": {"rule": "both"}}) == pytest.approx(1e-4)
    assert rate({"create_model": {"model_type": "IsolationForest", "params": {"contamination": 0.02}}}) == 0.02
    assert rate({"create_model": {"model_type": "IsolationForest", "params": {"contamination": "auto"}}}) is None
    with pytest.raises(InvalidConfig):
        rate({"create_model": {"model_type": "PCA", "params": {"confidence": 2}}})
