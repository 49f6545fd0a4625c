"""Every error code of the seed over real HTTP: a detail a person can act on, never a 500, and no
damage to another experiment."""

from __future__ import annotations

import copy

import pytest
import requests
from helpers import SEED_CONFIG


@pytest.fixture(scope="module")
def good(served, daily_records):
    """One ready experiment that every bad request must leave as it is."""
    hub, server = served
    config = copy.deepcopy(SEED_CONFIG)
    config["data"] = daily_records
    requests.post(f"{server.url}/create_experiment/good/time_series", json=config).raise_for_status()
    hub.wait("good", timeout=120)
    return hub.run_id("good")


@pytest.fixture
def untouched(served, good, daily_records):
    hub, server = served
    before = requests.get(f"{server.url}/good/cfg").json()
    yield server.url
    assert hub.status("good").state == "ready" and hub.run_id("good") == good
    assert requests.get(f"{server.url}/good/cfg").json() == before
    assert set(hub.experiments) == {"good"}


def with_data(config, records):
    config = copy.deepcopy(config)
    config["data"] = records
    return config


CASES = [
    # (id, method, path, json body or raw text, status, words in detail)
    ("unknown type", "post", "/create_experiment/x/invalid_type", {}, 400,
     "Unknown experiment type: invalid_type"),
    ("malformed JSON", "post", "/create_experiment/x/time_series", "{not json", 400, "Malformed JSON"),
    ("unknown model_type", "post", "/create_experiment/x/time_series",
     {"create_model": {"model_type": "ARIMA"}}, 400, "create_model.model_type"),
    ("unknown section", "post", "/create_experiment/x/time_series", {"setpu": {}}, 400, "allowed keys"),
    ("missing column", "post", "/create_experiment/x/time_series",
     {"setup": {"target": "sales"}, "data": [{"ds": "2024-01-01", "value": 1}]}, 400, "['sales'] not in the data"),
    ("no data anywhere", "post", "/create_experiment/x/time_series", SEED_CONFIG, 400,
     "publish them to the queue 'x'"),
    ("bad name", "post", "/create_experiment/bad%20name/time_series", {}, 400, "Invalid experiment name"),
    ("config not an object", "post", "/create_experiment/x/time_series", [1, 2], 422, "dictionary"),
    ("setup not an object", "post", "/create_experiment/x/time_series", {"setup": "value"}, 422,
     "request body at setup: Input should be a valid dictionary"),
    ("create existing", "post", "/create_experiment/good/time_series", SEED_CONFIG, 409, "already exists"),
    ("unknown experiment", "get", "/missing/cfg", None, 404, "Experiment not found: 'missing'"),
    ("unknown experiment predict", "post", "/missing/predict", None, 404, "Known experiments: 'good'"),
    ("unknown plot", "get", "/good/plot/nope", None, 404, "Available: 'anomalies', 'components', 'forecast'"),
    ("unknown EDA figure", "get", "/good/plot_eda/nope", None, 404, "'correlation'"),
    ("unknown run", "post", "/good/load/0123456789abcdef0123456789abcdef", None, 404, "No MLflow run"),
    ("never trained", "post", "/never/load", None, 404, "No finished MLflow run"),
    ("predict rows without ds", "post", "/good/predict", [{"when": "2024-01-01"}], 400, "['ds'] not in the rows"),
    ("predict rows not a table", "post", "/good/predict", "42", 422, "request body: Input should be a valid list"),
    ("predict bad timestamps", "post", "/good/predict", [{"ds": "not a date"}], 400, "timestamps"),
    ("train bad config", "post", "/good/train", {"create_model": {"model_type": "Prophet",
                                                                   "params": {"foo": 1}}}, 400,
     "create_model.params.foo"),
    ("delete unknown", "post", "/missing/delete", None, 404, "not found"),
    ("flush bad queue name", "post", "/flush/bad%20queue", None, 400, "Invalid queue name"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_answers(untouched, case):
    _, method, path, body, status, words = case
    kwargs = {}
    if isinstance(body, str):
        kwargs = {"data": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    response = requests.request(method, untouched + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_no_content_answers(served, good):
    hub, server = served
    assert requests.get(f"{server.url}/good/predictions").status_code in (200, 204)
    hub.create_experiment("slow", "time_series",
                          {"setup": {"target": "value"}, "create_model": {"model_type": "Prophet",
                                                                           "params": {"mcmc_samples": 300}}},
                          data=hub.train_data("good"))
    try:
        assert requests.get(f"{server.url}/slow/predictions").status_code == 204
        busy = requests.post(f"{server.url}/slow/predict")
        assert busy.status_code == 409 and "training" in busy.json()["detail"]
        again = requests.post(f"{server.url}/slow/train", json=SEED_CONFIG)
        assert again.status_code == 409
        assert requests.get(f"{server.url}/slow/plot/forecast").status_code == 409
        stop = requests.post(f"{server.url}/slow/stop_training").json()
        assert stop["message"] == "Training for experiment slow stopped successfully"
        no_model = requests.post(f"{server.url}/slow/predict")
        assert no_model.status_code == 409 and "no trained model" in no_model.json()["detail"]
    finally:
        hub.delete("slow")


def test_token(tmp_path):
    from experimenthub import ExperimentHub

    hub = ExperimentHub(home=str(tmp_path), warm_up=False)
    server = hub.serve(port=0, token="s3cret")
    try:
        assert requests.get(f"{server.url}/health").status_code == 401
        assert requests.get(f"{server.url}/health", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = requests.get(f"{server.url}/health", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        in_url = requests.get(f"{server.url}/experiments?token=s3cret")  # logged, kept in history: refused
        assert in_url.status_code == 401 and "not accepted in the URL" in in_url.json()["detail"]
        assert "Bearer" in requests.get(f"{server.url}/experiments").json()["detail"]
    finally:
        hub.stop_server()
