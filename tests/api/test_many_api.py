"""The REST routes over many experiments: create one per group, stop/delete a list, the leaderboard
(the same rows as ``hub.compare``), restore; and the reserved names cover every first path segment."""

from __future__ import annotations

import pandas as pd
import requests
from helpers import wait_for

from experimenthub.api.paths import RESERVED_FIRST_SEGMENTS
from experimenthub.tables import to_records

PROPHET = {"setup": {"target": "value", "ds": "ds"}, "create_model": {"model_type": "Prophet", "params": {}}}


def long_records(daily: list[dict], stores: list[str]) -> list[dict]:
    return [{**row, "store": store} for store in stores for row in daily[:120]]


def test_reserved_names_cover_every_fixed_first_segment(served):
    _, server = served
    paths = requests.get(server.url + "/openapi.json", timeout=30).json()["paths"]
    first = {path.strip("/").split("/")[0] for path in paths}
    fixed = {segment for segment in first if not segment.startswith("{")}
    assert fixed <= RESERVED_FIRST_SEGMENTS, fixed - RESERVED_FIRST_SEGMENTS


def test_create_experiments_stop_delete_and_compare_over_rest(served, daily_records):
    hub, server = served
    url = server.url
    body = {**PROPHET, "data": long_records(daily_records, ["North 1", "South/2"]), "by": "store",
            "prefix": "rest_"}
    answer = requests.post(f"{url}/create_experiments/time_series", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    names = answer.json()["names"]
    assert names == ["rest_North_1", "rest_South_2"]

    groups = {"g_a": daily_records[:100], "g_b": [{"ds": "2024-01-01", "value": "x"}]}
    refused = requests.post(f"{url}/create_experiments/time_series", json={**PROPHET, "groups": groups}, timeout=60)
    assert refused.status_code == 400 and "g_b" in refused.json()["detail"] and "g_a" not in hub.experiments
    listed = [{**record, "store": [1]} for record in daily_records[:5]]  # lists cannot name groups
    refused = requests.post(f"{url}/create_experiments/time_series", json={**PROPHET, "data": listed, "by": "store"},
                            timeout=60)
    assert refused.status_code == 400 and "plain values" in refused.json()["detail"]

    statuses = hub.wait(names, timeout=600, tracked=True, progress=False)
    assert {s.state for s in statuses.values()} == {"ready"}
    rows = requests.get(f"{url}/compare", params={"names": ",".join(names), "metric": "mae"}, timeout=60).json()
    frame = hub.compare(names, metric="mae")
    assert [r["experiment"] for r in rows] == list(frame["experiment"])
    assert [r["run_id"] for r in rows] == list(frame["run_id"])
    assert [r["mae"] for r in rows] == sorted(r["mae"] for r in rows)
    assert rows[0]["state"] == "ready" and rows[0]["experiment_type"] == "time_series"
    bad = requests.get(f"{url}/compare", params={"metric": "no_such_metric"}, timeout=30)
    assert bad.status_code == 400 and "no_such_metric" in bad.json()["detail"] and "mae" in bad.json()["detail"]

    hub.retrain(names[0])
    hub.wait(names[0], timeout=600, tracked=True)
    history = requests.get(f"{url}/compare", params={"names": names[0]}, timeout=60).json()
    assert len(history) == 2 and history[0]["kind"] == "retrain"
    assert history[0]["replaces"] == history[1]["run_id"] and history[0]["trigger"] == "manual"

    unknown = requests.post(f"{url}/delete", json={"names": [names[0], "nope"]}, timeout=60)
    assert unknown.status_code == 404 and names[0] in hub.experiments
    assert requests.post(f"{url}/stop_training", json={"names": names}, timeout=60).json()["stopped"] == {
        n: False for n in names}
    assert requests.post(f"{url}/delete", json={"names": names}, timeout=60).status_code == 200
    assert not set(names) & set(hub.experiments)
    wait_for(lambda: all("experimenthub.deleted_at" in hub.tracking.experiments()[n] for n in names), 60,
             "the deleted experiments to be marked in MLflow")
    assert requests.post(f"{url}/restore", json={"names": names}, timeout=60).status_code == 404


def test_compare_of_an_experiment_without_runs(served):
    _, server = served
    assert requests.get(f"{server.url}/compare", params={"names": "never_trained"}, timeout=30).json() == []


def test_restore_over_rest_brings_back_what_another_hub_trained(served, tmp_path, daily_records):
    hub, server = served
    from experimenthub import ExperimentHub

    other_home = hub.settings.home  # the same store, as a second kernel would share it
    with ExperimentHub(home=str(other_home), warm_up=False) as other:
        other.create_experiment("from_elsewhere", "time_series", PROPHET,
                                data=pd.DataFrame(daily_records[:90]))
        other.wait("from_elsewhere", tracked=True)
    answer = requests.post(f"{server.url}/restore", timeout=60)
    assert answer.status_code == 200 and "from_elsewhere" in answer.json()["restored"]
    assert hub.status("from_elsewhere").stage == "stored"
    assert requests.post(f"{server.url}/from_elsewhere/predict", timeout=120).text == "Prediction called"
    assert len(to_records(hub.predictions("from_elsewhere"))) == 30
