"""Settings from arguments, environment and YAML; the experiment-type allowlist and plugins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from experimenthub import ExperimentHub, InvalidConfig, Settings, UnknownExperimentType
from experimenthub.experiments.base import Evaluation, ExperimentType


def test_defaults_are_absolute_and_embedded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env(env={})
    assert settings.home == tmp_path / ".experimenthub"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / '.experimenthub' / 'mlflow.db'}"
    assert settings.rabbitmq_url is None and settings.server_host == "127.0.0.1"


def test_precedence_arguments_environment_yaml(tmp_path):
    yaml_file = tmp_path / "hub.yaml"
    yaml_file.write_text("mlflow_uri: http://yaml:5000\nexperiment_types: [time_series]\nserver_port: 9000\n")
    env = {"EXPERIMENTHUB_CONFIG": str(yaml_file), "EXPERIMENTHUB_SERVER_PORT": "9100",
           "MLFLOW_TRACKING_URI": "http://ignored:5000"}
    settings = Settings.from_env(env=env)
    assert settings.mlflow_uri == "http://yaml:5000"  # the YAML names it; MLFLOW_TRACKING_URI is a fallback
    assert settings.server_port == 9100 and settings.experiment_types == ("time_series",)
    settings = Settings.from_env(env={**env, "EXPERIMENTHUB_MLFLOW_URI": "http://env:5000"}, server_port=1)
    assert settings.mlflow_uri == "http://env:5000" and settings.server_port == 1
    assert Settings.from_env(env={"MLFLOW_TRACKING_URI": "http://fallback"}).mlflow_uri == "http://fallback"


def test_bad_settings_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("colour: blue\n")
    with pytest.raises(InvalidConfig, match="unknown keys \\['colour'\\]"):
        Settings.from_env(env={"EXPERIMENTHUB_CONFIG": str(bad)})
    with pytest.raises(TypeError, match="unknown settings"):
        Settings.from_env(env={}, colour="blue")


def test_enabled_types_are_an_allowlist(tmp_path):
    hub = ExperimentHub(home=str(tmp_path), experiment_types=["fault_detection"], warm_up=False)
    assert list(hub.available_experiments) == ["fault_detection"]
    with pytest.raises(UnknownExperimentType, match="Available types: 'fault_detection'"):
        hub.create_experiment("x", "time_series", {})
    with pytest.raises(UnknownExperimentType):
        hub.create_experiment("x", "os.path", {})  # a module path is never imported


def test_available_experiments_has_the_seed_shape(tmp_path):
    hub = ExperimentHub(home=str(tmp_path), warm_up=False)
    assert hub.available_experiments["time_series"] == {
        "module": "experimenthub.experiments.time_series", "class": "TimeSeriesExperiment"}
    assert hub.available_experiments["fault_detection"]["class"] == "FaultDetectionExperiment"


class MeanModel(ExperimentType):
    """A user-defined type: predicts the training mean of ``y``."""

    type_name = "mean"
    model_types = ("Mean",)
    retrain_metrics = ()

    @classmethod
    def parse_config(cls, config):
        from experimenthub.config import parse_common

        return parse_common(config, cls.model_types)

    def validate_data(self, frame):
        return frame

    def fit(self, data, progress):
        progress("fitting", 0.5)
        self.model = float(data["y"].mean())
        return Evaluation(data.assign(yhat=self.model), {"mean": self.model})

    def predict(self, data):
        return pd.DataFrame({"yhat": [self.model] * (1 if data is None else len(data))})

    def figures(self, train, evaluation, predictions):
        import plotly.graph_objects as go

        return {"mean": go.Figure(go.Scatter(y=evaluation.frame["yhat"]))}

    def save_model(self, path):
        Path(path).mkdir()
        Path(path, "mean.txt").write_text(str(self.model))

    def load_model(self, path):
        self.model = float(Path(path, "mean.txt").read_text())


def test_registered_type_trains_saves_and_loads(embedded_hub):
    embedded_hub.register_experiment_type("mean", MeanModel)
    assert embedded_hub.available_experiments["mean"]["class"] == "MeanModel"
    embedded_hub.create_experiment("m", "mean", {}, data=pd.DataFrame({"y": [1.0, 2.0, 6.0]}))
    assert embedded_hub.wait("m", timeout=60, tracked=True).metrics == {"mean": 3.0}
    assert embedded_hub.predict("m")["yhat"].tolist() == [3.0]
    embedded_hub.save("m")
    assert embedded_hub.load("m").model == 3.0
    with pytest.raises(TypeError):
        embedded_hub.register_experiment_type("bad", dict)


def test_entry_point_types_are_discovered(tmp_path, monkeypatch):
    package = tmp_path / "site"
    (package / "hub_plugin_demo").mkdir(parents=True)
    (package / "hub_plugin_demo" / "__init__.py").write_text(textwrap.dedent("""
        from tests_entry_point_base import Base
        class Plugged(Base):
            type_name = "plugged"
    """))
    (package / "tests_entry_point_base.py").write_text(
        "from test_settings_and_registry import MeanModel as Base\n")
    dist = package / "hub_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hub-plugin-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[experimenthub.experiment_types]\nplugged = hub_plugin_demo:Plugged\n")
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    hub = ExperimentHub(home=str(tmp_path / "home"), warm_up=False)
    assert hub.available_experiments["plugged"] == {"module": "hub_plugin_demo", "class": "Plugged"}
    assert hub.experiment_type("plugged").__name__ == "Plugged"
    assert "hub_plugin_demo" in sys.modules
