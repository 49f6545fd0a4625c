"""The seed document's flow over real HTTP, with the seed's own client and with ours."""

from __future__ import annotations

import copy
import time

import plotly.io
import pytest
import requests
from helpers import SEED_CONFIG
from seed_client import ExperimentHubClient as SeedClient

from experimenthub.client import APIError, ExperimentHubClient


def wait_ready(url: str, name: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/{name}/status", timeout=10).json()
        if status["state"] not in ("created", "training"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{name} not ready after {timeout} s")


def test_seed_client_flow(served, daily_records):
    hub, server = served
    client = SeedClient(server.url)

    health = client.check_health()
    assert health["mlops"]["healthy"] is True and health["mlops"]["details"]["status"] == "connected"
    assert health["datastream"]["healthy"] is True
    available = client.get_available_experiments()
    assert available["time_series"] == {"module": "experimenthub.experiments.time_series",
                                        "class": "TimeSeriesExperiment"}
    assert "fault_detection" in available

    # as in the seed: the training data reach the experiment through the queue named after it
    assert requests.post(f"{server.url}/publish/my_experiment", json=daily_records).status_code == 200
    result = client.create_experiment("my_experiment", "time_series", SEED_CONFIG)
    assert result == {"message": "Creating experiment 'my_experiment' of type 'time_series'"}
    assert "my_experiment" in hub.experiments  # the kernel's hub sees it at once
    status = wait_ready(server.url, "my_experiment")
    assert status["state"] == "ready" and status["progress"] == 1.0

    assert client.predict("my_experiment") == "Prediction called"  # no rows, empty queue: horizon ahead
    predictions = requests.get(f"{server.url}/my_experiment/predictions").json()
    assert len(predictions) == 30 and set(predictions[0]) == {"ds", "yhat", "yhat_lower", "yhat_upper"}

    forecast = plotly.io.from_json(__import__("json").dumps(client.get_plot("my_experiment", "forecast")))
    assert any(t.name == "forecast" for t in forecast.data)
    correlation = client.get_eda_plot("my_experiment", "correlation")
    assert correlation["data"][0]["type"] == "heatmap"
    experiments = client.get_experiments()
    assert experiments["my_experiment"][0] == ["forecast", "components", "anomalies"]
    assert {"correlation", "histogram"} <= set(experiments["my_experiment"][1])

    assert client.save("my_experiment") == "Experiment saved"
    assert client.load("my_experiment") == "Experiment loaded"
    run_id = requests.get(f"{server.url}/my_experiment/run_id").text
    assert run_id == hub.run_id("my_experiment") and len(run_id) == 32
    assert client.load("my_experiment", run_id) == "Experiment loaded"
    assert requests.get(f"{server.url}/my_experiment/exp_id").text == hub.exp_id("my_experiment")
    assert requests.get(f"{server.url}/my_experiment/cfg").json() == hub.cfg("my_experiment")
    train = requests.get(f"{server.url}/my_experiment/train_data").json()
    assert len(train) == 510 and set(train[0]) == {"ds", "value"}

    retrained = client.train("my_experiment", SEED_CONFIG)
    assert '"Training started based on sent parameters."' in retrained
    stopped = requests.post(f"{server.url}/my_experiment/stop_training").json()
    assert stopped["status"] == "success"
    assert hub.status("my_experiment").state in ("stopped", "ready")
    killed = requests.post(f"{server.url}/my_experiment/kill").json()
    assert killed == {"status": "success", "message": "Experiment my_experiment training stopped successfully"}
    assert requests.post(f"{server.url}/flush/my_experiment").text == "Rabbit flushed"
    deleted = requests.post(f"{server.url}/my_experiment/delete").json()
    assert deleted == {"status": "success", "message": "Experiment my_experiment deleted successfully"}
    assert "my_experiment" not in hub.experiments


def test_our_client_and_inline_data(served, daily_records):
    hub, server = served
    client = ExperimentHubClient(server.url)
    config = copy.deepcopy(SEED_CONFIG)
    config["data"] = daily_records
    client.create_experiment("inline", "time_series", config)
    assert client.wait_until_ready("inline")["state"] == "ready"
    new = [dict(r) for r in daily_records[-5:]]
    assert client.predict("inline", new) == "Prediction called"
    rows = client.predictions("inline")
    assert len(rows) == 5 and all("anomaly" in r for r in rows)
    assert [r["kind"] for r in client.runs("inline")] == ["train"]
    with pytest.raises(APIError) as caught:
        client.get_plot("inline", "nope")
    assert caught.value.status_code == 404 and "forecast" in caught.value.detail
    client.delete("inline")


def test_an_experiment_trained_in_python_is_visible_over_rest(served, daily_records):
    import pandas as pd

    hub, server = served
    frame = pd.DataFrame(daily_records)
    hub.create_experiment("from_cell", "time_series", SEED_CONFIG, data=frame)
    hub.wait("from_cell", timeout=120)
    assert "from_cell" in requests.get(f"{server.url}/experiments").json()
    assert requests.get(f"{server.url}/from_cell/status").json()["state"] == "ready"
    hub.delete("from_cell")


def test_openapi_describes_every_seed_endpoint(served):
    _, server = served
    spec = requests.get(f"{server.url}/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/health", "get"), ("/available_experiments", "get"),
                         ("/create_experiment/{name}/{experiment_type}", "post"), ("/{name}/train", "post"),
                         ("/{name}/load", "post"), ("/{name}/load/{run_id}", "post"), ("/{name}/save", "post"),
                         ("/{name}/stop_training", "post"), ("/{name}/delete", "post"), ("/{name}/kill", "post"),
                         ("/{name}/predict", "post"), ("/{name}/retrain", "post"),
                         ("/{name}/plot/{plot_name}", "get"), ("/{name}/plot_eda/{plot_name}", "get"),
                         ("/flush/{queue}", "post"), ("/{name}/train_data", "get"), ("/{name}/cfg", "get"),
                         ("/experiments", "get"), ("/{name}/run_id", "get"), ("/{name}/exp_id", "get"),
                         ("/{name}/status", "get"), ("/{name}/predictions", "get")]:
        assert method in paths[path], path
    assert paths["/{name}/kill"]["post"]["deprecated"] is True
    assert "ExperimentConfig" in spec["components"]["schemas"]
    assert requests.get(f"{server.url}/docs").status_code == 200
