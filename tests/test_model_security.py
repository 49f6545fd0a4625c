"""Stored models load only in formats that cannot run code (experimenthub.model_formats).

A run planted in the tracking store (the embedded sqlite store and a real ``mlflow server``) that
looks like ours (same tags, config, data) but whose model is a pickle, a cloudpickle, a skops file
with types outside our list, or a flavor we do not write, is refused by ``hub.load`` and by
``POST /{name}/load[/{run_id}]`` (403) before its model file is deserialised: the object planted
in it would write a marker file when deserialised, and the marker never appears. With
``trust_pickles`` a pickle loads, with a warning. Every model ExperimentHub writes loads back under
the strict loader with the same predictions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from helpers import SEED_CONFIG

from experimenthub import ExperimentHub, RunNotFound, UnsafeModel, persistence
from experimenthub.api.errors import status_for
from experimenthub.experiments.fault_detection import FaultDetectionExperiment
from experimenthub.experiments.time_series import TimeSeriesExperiment
from experimenthub.model_formats import FAULT_DETECTION_SKOPS, load_prophet, load_sklearn, skops_nodes
from experimenthub.registry import ExperimentTypeRegistry

NAME = "plant"
PCA_CONFIG = {"setup": {"ds": "ds"}, "create_model": {"model_type": "PCA", "params": {}}}


def progress(stage, fraction):
    pass


class Planted:
    """Writes ``marker`` when unpickled: what a pickle in the store can do to the kernel that loads it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "code ran")


def small_tep(tep, columns: int = 5, rows: int = 200) -> pd.DataFrame:
    features = [c for c in tep["normal_train"].columns if c not in ("ds", "fault")][:columns]
    return tep["normal_train"][["ds", *features]].head(rows)


def fitted_fault(data: pd.DataFrame, model_type: str, params: dict | None = None) -> FaultDetectionExperiment:
    exp = FaultDetectionExperiment({"setup": {"ds": "ds"},
                                    "create_model": {"model_type": model_type, "params": params or {}}})
    exp.fit(data, progress)
    return exp


# -- writing model directories the way others could ------------------------------------------------

def pickled_sklearn(target: Path, obj, fmt: str) -> Path:
    import mlflow.sklearn

    mlflow.sklearn.save_model(obj, str(target), serialization_format=fmt, pip_requirements=["scikit-learn"])
    return target


def skops_sklearn(target: Path, obj, trusted: list[str]) -> Path:
    """MLflow's sklearn flavor in skops, with the trusted-type list the writer chose in MLmodel."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(obj, str(target), serialization_format="skops", skops_trusted_types=trusted,
                              pip_requirements=["scikit-learn"])
    return target


def crafted_skops(target: Path, marker: Path) -> Path:
    """A skops file that calls ``builtins.eval`` when built, listed as trusted in its own MLmodel."""
    from sklearn.preprocessing import StandardScaler
    from skops.io._protocol import PROTOCOL

    skops_sklearn(target, StandardScaler(), [])
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('code ran')"
    schema = {
        "__class__": "eval", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [
            {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
             "content": json.dumps(code), "is_json": True}]},
        "protocol": PROTOCOL, "_skops_version": "0.16.0",
    }
    with zipfile.ZipFile(target / "model.skops", "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    edit_mlmodel(target, lambda spec: spec["flavors"]["sklearn"].update(skops_trusted_types=["builtins.eval"]))
    return target


def edit_mlmodel(directory: Path, change) -> None:
    spec = yaml.safe_load((directory / "MLmodel").read_text())
    change(spec)
    (directory / "MLmodel").write_text(yaml.safe_dump(spec))


# -- the strict loader, on model directories -------------------------------------------------------

@pytest.mark.parametrize("fmt", ["pickle", "cloudpickle"])
def test_pickled_sklearn_is_refused_before_unpickling(tmp_path, fmt):
    marker = tmp_path / "marker"
    model = pickled_sklearn(tmp_path / "model", Planted(marker), fmt)
    with pytest.raises(UnsafeModel, match=f"stored as '{fmt}'.*only from MLflow's sklearn flavor with "
                                          f"serialization_format 'skops'.*trust_pickles") as refused:
        load_sklearn(str(model), FAULT_DETECTION_SKOPS)
    assert refused.value.model_format == f"sklearn/{fmt}" and isinstance(refused.value, PermissionError)
    assert status_for(refused.value) == 403
    assert not marker.exists()
    edit_mlmodel(model, lambda spec: spec["flavors"]["sklearn"].pop("serialization_format"))
    with pytest.raises(UnsafeModel, match="stored as 'pickle' \\(its MLmodel names no serialization_format\\)"):
        load_sklearn(str(model), FAULT_DETECTION_SKOPS)  # MLflow reads a missing key as pickle
    assert not marker.exists()


def test_the_planted_objects_do_run_code_in_mlflow_loaders(tmp_path):
    """The threat is real: MLflow's own loader runs the planted code (pickle, and skops with the
    trusted list from the model's MLmodel), which is why the loader never hands it these files."""
    import mlflow.sklearn

    for i, write in enumerate([lambda d, m: pickled_sklearn(d, Planted(m), "pickle"), crafted_skops]):
        marker = tmp_path / f"marker{i}"
        mlflow.sklearn.load_model(str(write(tmp_path / f"model{i}", marker)))
        assert marker.read_text() == "code ran"


def test_skops_types_outside_our_list_are_refused(tmp_path):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    marker = tmp_path / "marker"
    crafted = crafted_skops(tmp_path / "eval", marker)
    with pytest.raises(UnsafeModel, match=r"types outside ExperimentHub's own list.*builtins\.eval "
                                          r"\(ConstructorFromReduceNode\)") as refused:
        load_sklearn(str(crafted), FAULT_DETECTION_SKOPS)
    assert refused.value.model_format == "sklearn/skops" and not marker.exists()

    import skops.io

    system = Pipeline([("scaler", StandardScaler()), ("run", FunctionTransformer(func=os.system))])
    system_name = f"{os.system.__module__}.system"
    assert skops.io.get_untrusted_types(data=skops.io.dumps(system)) == [system_name]
    model = skops_sklearn(tmp_path / "system", system, [system_name])  # MLflow loads it: its MLmodel says so
    with pytest.raises(UnsafeModel, match=rf"{system_name} \(TypeNode\).*"
                                          r"sklearn\.preprocessing\._function_transformer\.FunctionTransformer"):
        load_sklearn(str(model), FAULT_DETECTION_SKOPS)


def test_a_file_that_is_not_what_mlmodel_says_is_refused(tmp_path, tep):
    model = fitted_fault(small_tep(tep), "PCA")
    model.save_model(str(tmp_path / "ok"))

    def variant(name, change_dir):
        target = tmp_path / name
        shutil.copytree(tmp_path / "ok", target)
        change_dir(target)
        return str(target)

    cases = {
        "not a zip": (lambda d: (d / "model.skops").write_bytes(b"\x80\x04K\x01."), "is not a skops file"),
        "traversal": (lambda d: edit_mlmodel(d, lambda s: s["flavors"]["sklearn"].update(
            pickled_model="../ok/model.skops")), "not a plain file name"),
        "link": (lambda d: ((d / "model.skops").unlink(),
                            (d / "model.skops").symlink_to(tmp_path / "ok" / "model.skops")), "is a link"),
        "code": (lambda d: edit_mlmodel(d, lambda s: s["flavors"]["sklearn"].update(code="code")), "ships code"),
        "pyfunc only": (lambda d: edit_mlmodel(d, lambda s: s["flavors"].pop("sklearn")),
                        r"flavor\(s\) python_function, not what"),
        "extra flavor": (lambda d: edit_mlmodel(d, lambda s: s["flavors"].update(transformers={})),
                         r"flavor\(s\) python_function, sklearn, transformers"),
        "unknown format": (lambda d: edit_mlmodel(d, lambda s: s["flavors"]["sklearn"].update(
            serialization_format="joblib")), "serialization_format 'joblib'"),
        "no MLmodel": (lambda d: (d / "MLmodel").unlink(), "no MLmodel file"),
        "not YAML": (lambda d: (d / "MLmodel").write_text("flavors: [unclosed"), "not YAML"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(UnsafeModel, match=message):
            load_sklearn(variant(name.replace(" ", "_"), change), FAULT_DETECTION_SKOPS)
    (tmp_path / "ok" / "model.skops").unlink()
    with pytest.raises(RunNotFound, match="has no model file 'model.skops'"):
        load_sklearn(str(tmp_path / "ok"), FAULT_DETECTION_SKOPS)


def test_prophet_loads_only_its_json(tmp_path, daily):
    exp = TimeSeriesExperiment({**SEED_CONFIG, "forecast": {"horizon": 5}})
    exp.fit(exp.validate_data(daily.tail(120)), progress)
    exp.save_model(str(tmp_path / "ok"))
    import sys

    before = list(sys.path)
    assert load_prophet(str(tmp_path / "ok")).history["y"].tolist() == exp.model.history["y"].tolist()

    marker = tmp_path / "marker"
    pickled_sklearn(tmp_path / "sklearn", Planted(marker), "pickle")
    with pytest.raises(UnsafeModel, match=r"flavor\(s\) sklearn, not what.*only from MLflow's prophet flavor"):
        load_prophet(str(tmp_path / "sklearn"))  # a time_series run holding another flavor

    def variant(name, change):
        shutil.copytree(tmp_path / "ok", tmp_path / name)
        change(tmp_path / name)
        return str(tmp_path / name)

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "prophet.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    with pytest.raises(UnsafeModel, match="ships code"):
        load_prophet(variant("with_code", lambda d: (shutil.copytree(tmp_path / "code", d / "code"), edit_mlmodel(
            d, lambda s: s["flavors"]["prophet"].update(code="code")))))
    with pytest.raises(UnsafeModel, match="not a plain file name"):
        load_prophet(variant("traversal", lambda d: edit_mlmodel(d, lambda s: s["flavors"]["prophet"].update(
            data="/etc/passwd"))))
    with pytest.raises(UnsafeModel, match="is not JSON"):
        load_prophet(variant("pickle", lambda d: (d / "model.pr").write_bytes(b"\x80\x04K\x01.")))
    with pytest.raises(UnsafeModel, match="not the JSON string MLflow writes"):
        load_prophet(variant("object", lambda d: (d / "model.pr").write_text("{}")))
    with pytest.raises(UnsafeModel, match="country_holidays '__builtins__' is not a country code"):
        load_prophet(variant("country", lambda d: (d / "model.pr").write_text(json.dumps(json.dumps(
            {**json.loads(json.loads((d / "model.pr").read_text())), "country_holidays": "__builtins__"})))))
    assert sys.path == before and not marker.exists()


# -- our own models load under the strict loader ---------------------------------------------------

LOF_METRICS = {  # every metric BallTree and KDTree accept by name, with the parameters it needs
    "braycurtis": {}, "canberra": {}, "chebyshev": {}, "dice": {}, "euclidean": {}, "hamming": {},
    "haversine": {}, "jaccard": {}, "mahalanobis": {"metric_params": {"V": np.eye(2).tolist()}},
    "manhattan": {}, "minkowski": {"p": 3}, "rogerstanimoto": {}, "russellrao": {},
    "seuclidean": {"metric_params": {"V": [1.0, 2.0]}}, "sokalmichener": {}, "sokalsneath": {},
}


def test_the_allowlist_is_exactly_what_our_models_hold(tmp_path, tep):
    """Every node of every model we save is on the list (else saving fails), and every entry of the
    list occurs in some model we save; the metrics are those sklearn's trees accept by name."""
    from sklearn.metrics._dist_metrics import METRIC_MAPPING64
    from sklearn.neighbors import BallTree, KDTree

    names = (set(BallTree.valid_metrics) | set(KDTree.valid_metrics)) - {"pyfunc"}
    metric_classes = {f"{c.__module__}.{c.__name__}" for m, c in METRIC_MAPPING64.items() if m in names}
    listed_metrics = {n for n in FAULT_DETECTION_SKOPS["ObjectNode"] if n.startswith("sklearn.metrics.")}
    assert listed_metrics == metric_classes
    assert {METRIC_MAPPING64[m].__name__.removesuffix("Distance64").lower() for m in LOF_METRICS} == {
        c.rsplit(".", 1)[1].removesuffix("Distance64").lower() for c in metric_classes}

    two = small_tep(tep, columns=2)
    variants = [(small_tep(tep, 52), "PCA", {}), (small_tep(tep, 52), "IsolationForest", {}),
                (small_tep(tep, 52), "EllipticEnvelope", {}), (small_tep(tep, 52), "LocalOutlierFactor", {}),
                *((two, "LocalOutlierFactor", {"algorithm": algorithm}) for algorithm in ("ball_tree", "kd_tree")),
                *((two, "LocalOutlierFactor", {"algorithm": "ball_tree", "metric": m, **p})
                  for m, p in LOF_METRICS.items())]
    seen: set[tuple[str, str]] = set()
    for i, (data, model_type, params) in enumerate(variants):
        exp = fitted_fault(data, model_type, params)
        exp.save_model(str(tmp_path / str(i)))
        with zipfile.ZipFile(tmp_path / str(i) / "model.skops") as archive:
            seen |= skops_nodes(json.loads(archive.read("schema.json")))
    listed = {(kind, name) for kind, names in FAULT_DETECTION_SKOPS.items() for name in names}
    assert seen == listed


ROUND_TRIPS = {
    "PCA": ("PCA", {}, 52),
    "PCA-t2": ("PCA", {"n_components": 3}, 52),
    "IsolationForest": ("IsolationForest", {"n_estimators": 20, "contamination": 0.02}, 52),
    "EllipticEnvelope": ("EllipticEnvelope", {}, 10),
    "LocalOutlierFactor": ("LocalOutlierFactor", {}, 52),
    "LocalOutlierFactor-kd_tree": ("LocalOutlierFactor", {"algorithm": "kd_tree"}, 5),
    "LocalOutlierFactor-ball_tree": ("LocalOutlierFactor", {"algorithm": "ball_tree", "metric": "manhattan"}, 5),
}


@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_fault_detection_models_round_trip(tmp_path, tep, case):
    model_type, params, columns = ROUND_TRIPS[case]
    exp = fitted_fault(small_tep(tep, columns, rows=500), model_type, params)
    exp.save_model(str(tmp_path / "model"))
    fresh = FaultDetectionExperiment(exp.config)
    fresh.load_model(str(tmp_path / "model"))
    new = tep["idv01_test"].head(200)
    pd.testing.assert_frame_equal(fresh.predict(new), exp.predict(new))


def _prophet_case(daily: pd.DataFrame, case: str) -> tuple[dict, pd.DataFrame]:
    data = daily.tail(200).reset_index(drop=True)
    config = {**SEED_CONFIG, "forecast": {"horizon": 10}}
    if case == "regressors":
        data = data.assign(temp=np.sin(np.arange(len(data)) / 7.0), load=np.arange(len(data)) % 5)
        config = {**config, "setup": {**config["setup"], "regressors": ["temp", "load"]}}
    elif case == "holidays":
        config = {**config, "setup": {**config["setup"], "country_holidays": "US"}}
    elif case == "logistic":
        data = data.assign(cap=data["value"].max() * 1.5, floor=data["value"].min() * 0.5)
        config = {**config, "create_model": {"model_type": "Prophet", "params": {"growth": "logistic"}}}
    return config, data


@pytest.mark.parametrize("case", ["plain", "regressors", "holidays", "logistic"])
def test_prophet_models_round_trip(tmp_path, daily, case):
    config, data = _prophet_case(daily, case)
    exp = TimeSeriesExperiment(config)
    exp.fit(exp.validate_data(data), progress)
    exp.save_model(str(tmp_path / "model"))
    fresh = TimeSeriesExperiment(config)
    fresh.load_model(str(tmp_path / "model"))
    fresh.learned = dict(exp.learned)
    pd.testing.assert_frame_equal(fresh.predict(data.tail(30)), exp.predict(data.tail(30)))
    # Prophet's JSON brings the dates back in microseconds (as MLflow's loader does): same instants
    pd.testing.assert_frame_equal(fresh.predict(None), exp.predict(None), check_dtype=False)


# -- planted runs, over real MLflow ----------------------------------------------------------------

@dataclasses.dataclass
class Store:
    hub: ExperimentHub
    source: str  # a run of ours
    url: str  # the hub's REST API
    tmp: Path


@pytest.fixture(scope="module", params=["embedded", "server"])
def store(request, tmp_path_factory, tep):
    uri = None if request.param == "embedded" else request.getfixturevalue("mlflow_server")
    tmp = tmp_path_factory.mktemp("security")
    with ExperimentHub(home=str(tmp / "home"), mlflow_uri=uri, warm_up=False) as hub:
        hub.create_experiment(NAME, "fault_detection", PCA_CONFIG, data=small_tep(tep, 52, rows=500))
        source = hub.wait(NAME, timeout=120, tracked=True).run_id
        yield Store(hub, source, hub.serve(port=0).url, tmp)


def plant(store: Store, label: str, write_model) -> str:
    """A FINISHED run beside ``store.source``: its tags, config and data, and ``write_model(dir)`` as model."""
    client = store.hub.tracking.client
    source = client.get_run(store.source)
    folder = store.tmp / label
    copied = folder / "artifacts"
    copied.mkdir(parents=True)
    for path in ("config.json", "learned.json", "data"):
        client.download_artifacts(store.source, path, str(copied))
    write_model(folder / "model")
    tags = {k: v for k, v in source.data.tags.items() if k.startswith("experimenthub.")}
    run = client.create_run(source.info.experiment_id, run_name=f"planted-{label}", tags=tags)
    client.log_artifacts(run.info.run_id, str(copied))
    client.log_artifacts(run.info.run_id, str(folder / "model"), "model")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


PLANTS = {
    "pickle": (lambda d, m: pickled_sklearn(d, Planted(m), "pickle"), "stored as 'pickle'"),
    "cloudpickle": (lambda d, m: pickled_sklearn(d, Planted(m), "cloudpickle"), "stored as 'cloudpickle'"),
    "skops-eval": (crafted_skops, r"outside ExperimentHub's own list.*builtins\.eval"),
}


@pytest.mark.parametrize("kind", list(PLANTS))
def test_a_planted_model_is_refused_in_python_and_over_rest(store, tep, kind):
    write, message = PLANTS[kind]
    marker = store.tmp / f"marker-{kind}"
    run_id = plant(store, kind, lambda d: write(d, marker))
    new = tep["idv01_test"].head(50)
    before = store.hub.predict(NAME, new)
    with pytest.raises(UnsafeModel, match=message) as refused:
        store.hub.load(NAME, run_id)
    assert run_id in str(refused.value)
    answer = requests.post(f"{store.url}/{NAME}/load/{run_id}", timeout=60)
    assert answer.status_code == 403 and run_id in answer.json()["detail"]
    assert answer.json()["detail"] == str(refused.value)
    latest = requests.post(f"{store.url}/{NAME}/load", timeout=60)  # the planted run is the latest one
    assert latest.status_code == 403 and run_id in latest.json()["detail"]
    assert not marker.exists()
    assert store.hub.status(NAME).run_id == store.source  # the experiment in memory is untouched
    pd.testing.assert_frame_equal(store.hub.predict(NAME, new), before)


def test_trust_pickles_loads_a_pickle_with_a_warning(store, tep, caplog):
    exp = fitted_fault(small_tep(tep, 52, rows=500), "PCA")
    run_id = plant(store, "trusted", lambda d: pickled_sklearn(d, exp.model, "pickle"))
    with pytest.raises(UnsafeModel):
        persistence.load(store.hub.tracking, ExperimentTypeRegistry(), NAME, run_id)
    with caplog.at_level(logging.WARNING, logger="experimenthub.model_formats"):
        experiment, _ = persistence.load(store.hub.tracking, ExperimentTypeRegistry(), NAME, run_id, trust_pickles=True)
    warnings = [r for r in caplog.records if r.name == "experimenthub.model_formats"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert run_id in warnings[0].getMessage() and "'pickle'" in warnings[0].getMessage()
    new = tep["idv01_test"].head(100)
    pd.testing.assert_frame_equal(experiment.type_instance.predict(new), exp.predict(new))
    with pytest.raises(UnsafeModel):  # trust_pickles lifts pickles only
        persistence.load(store.hub.tracking, ExperimentTypeRegistry(), NAME,
                         plant(store, "trusted-eval", lambda d: crafted_skops(d, store.tmp / "m")), trust_pickles=True)
    assert not (store.tmp / "m").exists()


def test_the_hub_setting_trust_pickles_reaches_the_loader(store, tep):
    exp = fitted_fault(small_tep(tep, 52, rows=500), "PCA")
    run_id = plant(store, "hub-trusting", lambda d: pickled_sklearn(d, exp.model, "pickle"))
    with ExperimentHub(home=str(store.tmp / "trusting"), mlflow_uri=store.hub.tracking.uri, warm_up=False,
                       trust_pickles=True) as trusting:
        assert trusting.load(NAME, run_id).run_id == run_id
