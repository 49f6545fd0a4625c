"""MLflow runs: what a training records, save, and load (also in a fresh Python process).

Runs against the embedded sqlite store and against a real ``mlflow server``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from helpers import SEED_CONFIG

from experimenthub import ExperimentHub, RunNotFound

FRESH_PROCESS = textwrap.dedent("""
    import io, json, sys
    import pandas as pd
    from experimenthub import ExperimentHub
    home, uri, name, run_id, new_rows = sys.argv[1:6]
    hub = ExperimentHub(home=home, mlflow_uri=uri or None, warm_up=False)
    experiment = hub.load(name, run_id or None)
    new = pd.read_json(io.StringIO(new_rows), orient="split", dtype=False)
    if "ds" in new:
        new["ds"] = pd.to_datetime(new["ds"])
    out = {
        "state": experiment.state, "run_id": hub.run_id(name), "exp_id": hub.exp_id(name),
        "cfg": hub.cfg(name),
        "plots": {p: hub.plot_json(name, p) for p in hub.plot_names(name)[0]},
        "eda": {p: hub.plot_eda_json(name, p) for p in hub.plot_names(name)[1]},
        "train_data": hub.train_data(name).to_json(orient="split", date_format="iso"),
        "predict": hub.predict(name, new).to_json(orient="split", date_format="iso"),
    }
    print(json.dumps(out))
""")


def load_in_fresh_process(hub: ExperimentHub, name: str, run_id: str | None, new: pd.DataFrame) -> dict:
    uri = hub.settings.mlflow_uri or ""
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(hub.settings.home), uri, name, run_id or "",
         new.to_json(orient="split", date_format="iso")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_training_is_an_mlflow_run(hub, daily, tmp_path):
    hub.create_experiment("sales", "time_series", SEED_CONFIG, data=daily)
    status = hub.wait("sales", timeout=120, tracked=True)
    assert status.tracking == "logged"
    run = hub.tracking.get_run(status.run_id)
    assert run.experiment_name == "sales" and run.experiment_id == hub.exp_id("sales")
    assert run.status == "FINISHED"
    assert run.params["model_type"] == "Prophet" and run.params["params.seasonality_mode"] == "multiplicative"
    assert {"mae", "rmse", "mape", "coverage"} <= set(run.metrics)
    client = hub.tracking.client
    top = {f.path for f in client.list_artifacts(run.run_id)}
    assert {"config.json", "model", "data", "learned.json"} <= top
    assert not {"figures", "eda"} & top  # deferred: built (and written to the run) when first asked for
    hub.plot_json("sales", "components")
    hub.plot_eda_json("sales", "summary")
    hub.close()  # lets the background write of the figures finish
    figures = {f.path for f in client.list_artifacts(run.run_id, "figures")}
    eda = {f.path for f in client.list_artifacts(run.run_id, "eda")}
    assert figures == {f"figures/{n}.json" for n in ("forecast", "components", "anomalies")}
    assert eda == {f"eda/{n}.json" for n in ("correlation", "histogram", "series", "missing", "summary")}
    model_files = {f.path for f in client.list_artifacts(run.run_id, "model")}
    assert "model/MLmodel" in model_files  # MLflow's native prophet flavor, not a pickle of ours
    import mlflow.prophet

    native = mlflow.prophet.load_model(hub.tracking.download(run.run_id, "model", str(tmp_path)))
    assert native.history["y"].size == len(daily)


CASES = {
    "time_series": (SEED_CONFIG, "daily", lambda d: d.tail(20).reset_index(drop=True)),
    "fault_detection": ({"setup": {"ds": "ds", "label": "fault"},
                         "create_model": {"model_type": "PCA", "params": {}}},
                        "tep_train", lambda d: d.iloc[150:190].reset_index(drop=True)),
}


@pytest.mark.parametrize("experiment_type", list(CASES))
def test_save_then_load_in_a_fresh_process(hub, daily, tep, experiment_type):
    config, which, new_rows = CASES[experiment_type]
    data = daily if which == "daily" else tep["normal_train"].assign(fault=0)
    new = new_rows(daily if which == "daily" else tep["idv01_test"])
    hub.create_experiment("exp", experiment_type, config, data=data)
    hub.wait("exp", timeout=120)
    hub.predict("exp", new)  # predictions change the model figures; save must record that
    run_id = hub.save("exp")
    here = {
        "cfg": hub.cfg("exp"),
        "plots": {p: hub.plot_json("exp", p) for p in hub.plot_names("exp")[0]},
        "eda": {p: hub.plot_eda_json("exp", p) for p in hub.plot_names("exp")[1]},
        "train_data": hub.train_data("exp"),
        "predict": hub.predict("exp", new),
    }
    there = load_in_fresh_process(hub, "exp", None, new)
    assert there["state"] == "ready" and there["run_id"] == run_id and there["exp_id"] == hub.exp_id("exp")
    assert there["cfg"] == json.loads(json.dumps(here["cfg"]))
    assert there["plots"] == here["plots"]
    assert there["eda"] == here["eda"]
    train = pd.read_json(io.StringIO(there["train_data"]), orient="split")
    pd.testing.assert_frame_equal(train.assign(ds=pd.to_datetime(train["ds"])).reset_index(drop=True),
                                  here["train_data"].reset_index(drop=True), check_dtype=False)
    predicted = pd.read_json(io.StringIO(there["predict"]), orient="split")
    numeric = [c for c in here["predict"].columns if pd.api.types.is_float_dtype(here["predict"][c])]
    assert numeric
    for column in numeric:
        pd.testing.assert_series_equal(predicted[column], here["predict"][column], check_exact=False,
                                       rtol=1e-9)
    assert predicted["anomaly"].tolist() == here["predict"]["anomaly"].tolist()


def test_load_by_run_id_and_latest(hub, daily):
    hub.create_experiment("sales", "time_series", SEED_CONFIG, data=daily)
    first = hub.wait("sales", timeout=120, tracked=True).run_id
    hub.retrain("sales")
    second = hub.wait("sales", timeout=120, tracked=True).run_id
    assert first != second
    assert hub.load("sales").run_id == second  # latest finished run
    assert hub.load("sales", first).run_id == first
    assert hub.status("sales").state == "ready"
    assert [r.run_id for r in hub.runs("sales")][:2] == [second, first]


def test_load_errors(hub, daily):
    with pytest.raises(RunNotFound, match="No finished MLflow run"):
        hub.load("never_trained")
    with pytest.raises(RunNotFound):
        hub.load("sales", "0123456789abcdef0123456789abcdef")
    hub.create_experiment("sales", "time_series", SEED_CONFIG, data=daily)
    run_id = hub.wait("sales", timeout=120, tracked=True).run_id
    with pytest.raises(RunNotFound, match="belongs to MLflow experiment 'sales'"):
        hub.load("other", run_id)
    assert hub.status("sales").state == "ready"
