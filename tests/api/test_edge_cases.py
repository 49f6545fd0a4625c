"""Odd requests found in review: each gets a 4xx with a detail (or is accepted with defaults),
never a 500, and loses no queued message."""

from __future__ import annotations

import copy

import requests
from helpers import SEED_CONFIG, wait_for


def create(url: str, name: str, kind: str, config: dict) -> requests.Response:
    return requests.post(f"{url}/create_experiment/{name}/{kind}", json=config, timeout=60)


def test_nulls_mean_defaults(served, daily_records, tep):
    hub, server = served
    config = copy.deepcopy(SEED_CONFIG)
    config.update(data=daily_records, anomaly={"k": None}, forecast={"horizon": None, "seed": None},
                  retrain={"threshold": 0.5, "window": None, "min_rows": None})
    assert create(server.url, "nulls", "time_series", config).status_code == 200
    assert hub.wait("nulls", timeout=120).state == "ready"
    assert requests.post(f"{server.url}/nulls/predict").status_code == 200
    assert hub.cfg("nulls")["forecast"]["horizon"] == 30 and hub.cfg("nulls")["retrain"]["window"] == 100
    rows = tep["normal_train"].head(200).assign(ds=lambda d: d["ds"].astype(str)).to_dict(orient="records")
    forest = {"create_model": {"model_type": "IsolationForest", "params": {"confidence": None}}, "data": rows}
    assert create(server.url, "forest", "fault_detection", forest).status_code == 200
    hub.delete("nulls")
    hub.delete("forest")


def test_out_of_range_timestamps_and_duplicate_columns(served, daily_records):
    hub, server = served
    config = copy.deepcopy(SEED_CONFIG)
    config["data"] = daily_records
    create(server.url, "edges", "time_series", config).raise_for_status()
    hub.wait("edges", timeout=120)
    assert requests.post(f"{server.url}/edges/predict", json=daily_records[-3:]).status_code == 200
    for ds in ("9999-12-31", "0001-01-01"):
        answer = requests.post(f"{server.url}/edges/predict", json=[{"ds": ds, "value": 1.0}])
        assert answer.status_code == 400 and "between 1677-09-22 and 2262-04-11" in answer.json()["detail"]
    answer = requests.post(f"{server.url}/edges/predict", json=[{"ds": 5}])
    assert answer.status_code == 400 and "not numbers" in answer.json()["detail"]
    duplicated = {"columns": ["ds", "value", "value"], "data": [["2024-01-01", 1, 2], ["2024-01-02", 2, 3]]}
    answer = create(server.url, "dup", "time_series", {**SEED_CONFIG, "data": duplicated})
    assert answer.status_code == 400 and "duplicate column names ['value']" in answer.json()["detail"]
    # the earlier predictions are intact, and the queue lost nothing: a refused queued batch goes to
    # the dead letters with its reason, a good one is predicted and acknowledged
    requests.post(f"{server.url}/publish/edges", json=[{"ds": "9999-01-01", "value": 1.0}]).raise_for_status()
    assert requests.post(f"{server.url}/edges/predict").status_code == 400
    assert hub.datastream.depth("edges") == 0 and len(hub.datastream.dead_letters("edges")) == 1
    assert len(requests.get(f"{server.url}/edges/predictions").json()) == 3
    assert requests.post(f"{server.url}/publish/edges", json=[]).status_code == 400  # nothing to publish
    hub.delete("edges")


def test_a_failed_experiment_has_no_figures_to_show(served):
    hub, server = served
    config = {"setup": {"target": "value"}, "data": [{"ds": "2024-01-01", "value": 1.0}] * 3}
    answer = create(server.url, "single", "time_series", config)
    assert answer.status_code == 400 and "2 distinct timestamps" in answer.json()["detail"]
    slow = {"setup": {"target": "value"}, "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 300}},
            "data": [{"ds": f"2024-01-{d:02d}", "value": float(d % 7)} for d in range(1, 29)]}
    create(server.url, "halted", "time_series", slow).raise_for_status()
    requests.post(f"{server.url}/halted/stop_training").raise_for_status()
    answer = requests.get(f"{server.url}/halted/plot/forecast")
    assert answer.status_code == 409 and "no trained model" in answer.json()["detail"]
    hub.delete("halted")


def test_load_right_after_training_loads_the_newest_run(served, daily_records):
    hub, server = served
    config = copy.deepcopy(SEED_CONFIG)
    config["data"] = daily_records
    create(server.url, "newest", "time_series", config).raise_for_status()
    hub.wait("newest", timeout=120)
    first = hub.run_id("newest")
    requests.post(f"{server.url}/newest/train", json={"data": daily_records[:200]}).raise_for_status()
    wait_for(lambda: hub.status("newest").state == "ready" and hub.run_id("newest") != first, 120, "retrained")
    second = hub.run_id("newest")
    assert requests.post(f"{server.url}/newest/load").status_code == 200  # at once, while it is written
    assert hub.run_id("newest") == second and len(hub.train_data("newest")) == 200
    hub.delete("newest")


def test_token_leaves_the_docs_readable(tmp_path):
    from experimenthub import ExperimentHub

    hub = ExperimentHub(home=str(tmp_path), warm_up=False)
    server = hub.serve(port=0, token="s3cret")
    try:
        assert requests.get(f"{server.url}/openapi.json", timeout=10).status_code == 200
        assert requests.get(f"{server.url}/docs", timeout=10).status_code == 200
        assert requests.get(f"{server.url}/experiments", timeout=10).status_code == 401
    finally:
        hub.close()
    assert hub.server is None  # close() stops the server too
