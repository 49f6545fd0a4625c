"""fault_detection through the hub on the Tennessee Eastman Process, and the retrain policy."""

from __future__ import annotations

import pytest
from helpers import wait_for

from experimenthub import DataError, InvalidConfig, NoData

DEFAULTS = {"setup": {}, "create_model": {"model_type": "PCA", "params": {}}}


def test_pca_defaults_detect_the_fault_with_few_false_alarms(embedded_hub, tep):
    embedded_hub.create_experiment("tep", "fault_detection", DEFAULTS, data=tep["normal_train"])
    status = embedded_hub.wait("tep", timeout=120)
    assert status.state == "ready" and status.metrics["n_components"] >= 1

    faulty = embedded_hub.predict("tep", tep["idv01_test"])
    assert list(faulty.columns[:6]) == ["ds", "t2", "t2_limit", "spe", "spe_limit", "anomaly"]
    after = tep["idv01_test"]["fault"] == 1
    assert faulty.loc[after, "anomaly"].mean() > 0.99  # IDV(1) is caught almost at once
    assert faulty.loc[~after, "anomaly"].mean() < 0.03  # configured rate: 1 %
    normal = embedded_hub.predict("tep", tep["normal_test"])
    assert normal["anomaly"].mean() < 0.05  # an independent 48 h run of normal operation

    model_figures, eda_figures = embedded_hub.plot_names("tep")
    assert {"control_chart", "anomalies", "contributions"} <= set(model_figures)
    assert {"correlation", "histogram"} <= set(eda_figures)
    chart = embedded_hub.plot("tep", "control_chart")
    assert len(chart.data) >= 4


@pytest.mark.parametrize("model_type", ["IsolationForest", "EllipticEnvelope", "LocalOutlierFactor"])
def test_other_detectors(embedded_hub, tep, model_type):
    config = {"setup": {"ds": "ds"}, "create_model": {"model_type": model_type, "params": {}}}
    embedded_hub.create_experiment("tep", "fault_detection", config, data=tep["normal_train"])
    embedded_hub.wait("tep", timeout=120)
    faulty = embedded_hub.predict("tep", tep["idv01_test"])
    assert {"score", "score_limit", "anomaly"} <= set(faulty.columns)
    assert faulty.loc[tep["idv01_test"]["fault"] == 1, "anomaly"].mean() > 0.9


def test_bad_fault_detection_input(embedded_hub, tep):
    data = tep["normal_train"]
    with pytest.raises(InvalidConfig, match="n_components"):
        embedded_hub.create_experiment("x", "fault_detection",
                                       {"create_model": {"model_type": "PCA", "params": {"n_components": -2}}},
                                       data=data)
    with pytest.raises(DataError, match="xmeas_99"):
        embedded_hub.create_experiment("x", "fault_detection", {"setup": {"features": ["xmeas_1", "xmeas_99"]}},
                                       data=data)
    with pytest.raises(DataError, match="xmeas_2"):
        embedded_hub.create_experiment("x", "fault_detection", DEFAULTS,
                                       data=data.assign(xmeas_2=data["xmeas_2"].where(data.index != 7)))
    with pytest.raises(NoData):
        embedded_hub.create_experiment("x", "fault_detection", DEFAULTS, data=data.iloc[0:0])
    assert "x" not in embedded_hub.experiments


def test_retrain_policy_triggers_a_new_run(embedded_hub, tep):
    config = {**DEFAULTS, "retrain": {"metric": "anomaly_rate", "threshold": 0.5, "window": 200, "min_rows": 100}}
    events = []
    embedded_hub.subscribe(events.append, kinds=["state_changed"])
    embedded_hub.create_experiment("tep", "fault_detection", config, data=tep["normal_train"])
    first = embedded_hub.wait("tep", timeout=120, tracked=True).run_id

    embedded_hub.predict("tep", tep["normal_test"].iloc[:150])  # normal: below the threshold
    assert embedded_hub.status("tep").retrain["triggered"] is False
    embedded_hub.predict("tep", tep["idv01_test"].iloc[300:500])  # a fault: 100 % alarms
    checks = [e.data["retrain"] for e in events if "retrain" in e.data]
    assert checks and checks[-1]["triggered"] and checks[-1]["value"] > 0.5
    wait_for(lambda: embedded_hub.run_id("tep") != first, 120, "the retrain's new MLflow run")
    second = embedded_hub.wait("tep", timeout=120).run_id
    assert second != first
    run = embedded_hub.tracking.get_run(second)
    assert run.tags["experimenthub.kind"] == "retrain"
    # retraining keeps normal operation only: the flagged fault rows are not learned as normal
    added = len(embedded_hub.train_data("tep")) - len(tep["normal_train"])
    assert 140 <= added <= 150


def test_time_series_retrain_policy_on_drift(embedded_hub, daily):
    config = {"setup": {"target": "value"}, "create_model": {"model_type": "Prophet", "params": {}},
              "retrain": {"metric": "mape", "threshold": 0.2, "window": 30, "min_rows": 10}}
    embedded_hub.create_experiment("sales", "time_series", config, data=daily)
    first = embedded_hub.wait("sales", timeout=120).run_id
    drifted = daily.tail(30).assign(value=lambda d: d["value"] * 2)  # the level doubles
    embedded_hub.predict("sales", drifted)
    check = embedded_hub.status("sales").retrain
    assert check["triggered"] and check["metric"] == "mape" and check["value"] > 0.2
    second = embedded_hub.wait("sales", timeout=120).run_id
    assert second != first
    assert len(embedded_hub.train_data("sales")) == len(daily) + 30
