"""Settings from arguments, environment and YAML; the experiment-type allowlist and plugins."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from experimenthub import ExperimentHub, InvalidConfig, Settings, UnknownExperimentType
from experimenthub.experiments.base import Evaluation, ExperimentType
from experimenthub.redact import redact_text, redact_uri


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


def test_only_the_given_environment_is_read(monkeypatch):
    monkeypatch.setenv("EXPERIMENTHUB_SERVER_PORT", "1234")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://process:5000")
    assert Settings.from_env(env={}).server_port == 8010
    assert Settings.from_env(env={}).mlflow_uri is None
    assert Settings.from_env().server_port == 1234  # no mapping: os.environ
    assert Settings().server_port == 1234  # constructed directly: the same sources


def test_new_fields_have_their_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env(env={})
    assert settings.max_trainings == (os.cpu_count() or 1)
    assert (settings.executor, settings.dask_address, settings.tracking_writers) == ("local", None, None)
    assert settings.defer_figures is True and settings.freeze_gc is True
    assert settings.token is None and settings.token_file is None and settings.api_token is None
    assert settings.allowed_hosts == () and settings.allowed_origins == ()
    assert settings.trust_pickles is False and settings.allow_unauthenticated is False
    assert (settings.max_body_bytes, settings.max_rows, settings.max_experiments) == (
        100 * 1024 * 1024, 10_000_000, 10_000)


def test_every_field_from_the_environment(tmp_path):
    env = {
        "EXPERIMENTHUB_HOME": str(tmp_path / "h"), "EXPERIMENTHUB_RABBITMQ_URL": "amqp://guest:guest@mq/%2F",
        "EXPERIMENTHUB_EXPERIMENT_TYPES": "time_series, fault_detection,", "EXPERIMENTHUB_SERVER_HOST": "0.0.0.0",
        "EXPERIMENTHUB_SERVER_PORT": "9100", "EXPERIMENTHUB_FREEZE_GC": "off", "EXPERIMENTHUB_MAX_TRAININGS": "3",
        "EXPERIMENTHUB_EXECUTOR": "dask", "EXPERIMENTHUB_DASK_ADDRESS": "tcp://scheduler:8786",
        "EXPERIMENTHUB_TRACKING_WRITERS": "2", "EXPERIMENTHUB_DEFER_FIGURES": "no", "EXPERIMENTHUB_TOKEN": "t0ken",
        "EXPERIMENTHUB_ALLOWED_HOSTS": "hub.example.org,localhost",
        "EXPERIMENTHUB_ALLOWED_ORIGINS": "https://a.example.org, https://b.example.org",
        "EXPERIMENTHUB_TRUST_PICKLES": "yes", "EXPERIMENTHUB_MAX_BODY_BYTES": "1024", "EXPERIMENTHUB_MAX_ROWS": "5",
        "EXPERIMENTHUB_MAX_EXPERIMENTS": "7", "EXPERIMENTHUB_ALLOW_UNAUTHENTICATED": "1",
    }
    settings = Settings.from_env(env=env)
    assert settings.home == tmp_path / "h" and settings.rabbitmq_url == "amqp://guest:guest@mq/%2F"
    assert settings.experiment_types == ("time_series", "fault_detection")
    assert (settings.server_host, settings.server_port, settings.freeze_gc) == ("0.0.0.0", 9100, False)
    assert (settings.max_trainings, settings.executor, settings.dask_address) == (3, "dask", "tcp://scheduler:8786")
    assert (settings.tracking_writers, settings.defer_figures, settings.api_token) == (2, False, "t0ken")
    assert settings.allowed_hosts == ("hub.example.org", "localhost")
    assert settings.allowed_origins == ("https://a.example.org", "https://b.example.org")
    assert (settings.trust_pickles, settings.allow_unauthenticated) == (True, True)
    assert (settings.max_body_bytes, settings.max_rows, settings.max_experiments) == (1024, 5, 7)


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("false", False), ("1", True), ("0", False), ("yes", True), ("no", False),
    ("on", True), ("off", False), ("TRUE", True), ("Off", False)])
def test_booleans_from_the_environment(text, value):
    settings = Settings.from_env(env={"EXPERIMENTHUB_TRUST_PICKLES": text, "EXPERIMENTHUB_DEFER_FIGURES": text})
    assert settings.trust_pickles is value and settings.defer_figures is value


def test_empty_environment_variables_count_as_unset(tmp_path):
    yaml_file = tmp_path / "hub.yaml"
    yaml_file.write_text("server_port: 9000\nmlflow_uri: http://yaml:5000\n")
    env = {name: "" for name in ("EXPERIMENTHUB_SERVER_PORT", "EXPERIMENTHUB_MAX_TRAININGS", "EXPERIMENTHUB_TOKEN",
                                 "EXPERIMENTHUB_ALLOWED_HOSTS", "EXPERIMENTHUB_TRUST_PICKLES",
                                 "EXPERIMENTHUB_TRACKING_WRITERS", "EXPERIMENTHUB_MLFLOW_URI")}
    settings = Settings.from_env(env={**env, "EXPERIMENTHUB_CONFIG": str(yaml_file)})
    assert settings.server_port == 9000 and settings.mlflow_uri == "http://yaml:5000"
    assert settings.max_trainings == (os.cpu_count() or 1) and settings.api_token is None
    assert settings.allowed_hosts == () and settings.trust_pickles is False and settings.tracking_writers is None
    fallback = Settings.from_env(env={"EXPERIMENTHUB_MLFLOW_URI": "", "MLFLOW_TRACKING_URI": "http://fallback"})
    assert fallback.mlflow_uri == "http://fallback"
    assert Settings.from_env(env={"EXPERIMENTHUB_CONFIG": ""}).server_port == 8010  # no file named


def test_every_field_from_yaml(tmp_path):
    yaml_file = tmp_path / "hub.yaml"
    yaml_file.write_text(textwrap.dedent(f"""
        home: {tmp_path / "yaml-home"}
        experiment_types: time_series, fault_detection
        freeze_gc: false
        max_trainings: 4
        executor: dask
        dask_address: tcp://scheduler:8786
        tracking_writers: 3
        defer_figures: no
        token: from-yaml
        allowed_hosts: [hub.example.org, localhost]
        allowed_origins: https://a.example.org
        trust_pickles: on
        max_body_bytes: 2048
        max_rows: 10
        max_experiments: 20
        allow_unauthenticated: true
        rabbitmq_url: null
    """))
    settings = Settings.from_env(env={}, config_file=str(yaml_file))
    assert settings.home == tmp_path / "yaml-home" and settings.rabbitmq_url is None
    assert settings.experiment_types == ("time_series", "fault_detection") and settings.freeze_gc is False
    assert (settings.max_trainings, settings.executor, settings.dask_address) == (4, "dask", "tcp://scheduler:8786")
    assert (settings.tracking_writers, settings.defer_figures, settings.api_token) == (3, False, "from-yaml")
    assert settings.allowed_hosts == ("hub.example.org", "localhost")
    assert settings.allowed_origins == ("https://a.example.org",)
    assert (settings.trust_pickles, settings.allow_unauthenticated) == (True, True)
    assert (settings.max_body_bytes, settings.max_rows, settings.max_experiments) == (2048, 10, 20)


def test_arguments_beat_environment_beat_yaml_for_new_fields(tmp_path):
    yaml_file = tmp_path / "hub.yaml"
    yaml_file.write_text("max_trainings: 2\nallowed_hosts: [yaml]\nexecutor: dask\ntrust_pickles: true\n")
    env = {"EXPERIMENTHUB_CONFIG": str(yaml_file), "EXPERIMENTHUB_MAX_TRAININGS": "5",
           "EXPERIMENTHUB_ALLOWED_HOSTS": "env1,env2"}
    settings = Settings.from_env(env=env)
    assert (settings.max_trainings, settings.allowed_hosts) == (5, ("env1", "env2"))
    assert settings.executor == "dask" and settings.trust_pickles is True  # only the YAML names them
    settings = Settings.from_env(env=env, max_trainings=9, allowed_hosts=("arg",), executor=None)
    assert (settings.max_trainings, settings.allowed_hosts, settings.executor) == (9, ("arg",), "dask")


def test_mlflow_tracking_uri_is_the_last_fallback(tmp_path):
    yaml_file = tmp_path / "hub.yaml"
    yaml_file.write_text("mlflow_uri: http://yaml:5000\n")
    with_yaml = {"EXPERIMENTHUB_CONFIG": str(yaml_file), "MLFLOW_TRACKING_URI": "http://fallback:5000"}
    assert Settings.from_env(env=with_yaml).mlflow_uri == "http://yaml:5000"
    assert Settings.from_env(env={**with_yaml, "EXPERIMENTHUB_MLFLOW_URI": "http://env:5000"}).mlflow_uri == (
        "http://env:5000")
    assert Settings.from_env(env=with_yaml, mlflow_uri="http://arg:5000").mlflow_uri == "http://arg:5000"
    yaml_file.write_text("server_port: 9000\n")  # the YAML names no URI: the fallback applies
    settings = Settings.from_env(env=with_yaml)
    assert settings.mlflow_uri == "http://fallback:5000" and not settings.uses_embedded_tracking
    assert Settings.from_env(env={"MLFLOW_TRACKING_URI": ""}).uses_embedded_tracking


@pytest.mark.parametrize(("content", "key", "message"), [
    ("colour: blue\nshape: round\n", "colour", r"unknown keys \['colour', 'shape'\].*known keys.*max_trainings"),
    ("SERVER_PORT: 1\n", "SERVER_PORT", r"unknown keys \['SERVER_PORT'\]"),  # keys are lower case
    ("server_port: lots\n", "server_port", r"server_port from .*hub\.yaml: Input should be a valid integer.*'lots'"),
    ("max_rows: 0\n", "max_rows", r"max_rows from .*hub\.yaml: .*greater than or equal to 1"),
    ("executor: ray\n", "executor", r"executor from .*hub\.yaml: .*'local' or 'dask'"),
    ("allowed_hosts: [1, 2]\n", "allowed_hosts", r"allowed_hosts from .*hub\.yaml: .*valid string"),
    ("- a list\n", "EXPERIMENTHUB_CONFIG", r"must hold a mapping"),
    ("server_port: [unclosed\n", "EXPERIMENTHUB_CONFIG", r"not valid YAML"),
])
def test_bad_yaml_names_the_key(tmp_path, content, key, message):
    yaml_file = tmp_path / "hub.yaml"
    yaml_file.write_text(content)
    with pytest.raises(InvalidConfig, match=message) as caught:
        Settings.from_env(env={"EXPERIMENTHUB_CONFIG": str(yaml_file)})
    assert caught.value.key == key


def test_missing_yaml_file_is_an_error(tmp_path):
    with pytest.raises(InvalidConfig, match="does not exist") as caught:
        Settings.from_env(env={}, config_file=str(tmp_path / "missing.yaml"))
    assert caught.value.key == "EXPERIMENTHUB_CONFIG"


@pytest.mark.parametrize(("variable", "value", "key"), [
    ("EXPERIMENTHUB_SERVER_PORT", "abc", "server_port"),
    ("EXPERIMENTHUB_SERVER_PORT", "70000", "server_port"),
    ("EXPERIMENTHUB_MAX_TRAININGS", "0", "max_trainings"),
    ("EXPERIMENTHUB_TRACKING_WRITERS", "0", "tracking_writers"),
    ("EXPERIMENTHUB_MAX_BODY_BYTES", "-1", "max_body_bytes"),
    ("EXPERIMENTHUB_MAX_EXPERIMENTS", "many", "max_experiments"),
    ("EXPERIMENTHUB_EXECUTOR", "threads", "executor"),
    ("EXPERIMENTHUB_TRUST_PICKLES", "maybe", "trust_pickles"),
])
def test_bad_environment_values_name_the_key_and_variable(variable, value, key):
    with pytest.raises(InvalidConfig, match=f"{key} from {variable}: .*'{value}'") as caught:
        Settings.from_env(env={variable: value})
    assert caught.value.key == key


def test_bad_arguments_name_the_key():
    with pytest.raises(InvalidConfig, match="max_rows from the argument") as caught:
        Settings.from_env(env={}, max_rows=0)
    assert caught.value.key == "max_rows"
    with pytest.raises(TypeError, match="unknown settings: \\['max_training'\\]; known: .*'max_trainings'"):
        Settings.from_env(env={}, max_training=2)


def test_settings_are_immutable():
    settings = Settings.from_env(env={})
    with pytest.raises(ValueError, match="frozen"):
        settings.server_port = 1
    assert settings.home.is_absolute()


def test_token_from_environment_or_file_never_shown(tmp_path):
    secret = "s3cret-t0ken"
    settings = Settings.from_env(env={"EXPERIMENTHUB_TOKEN": secret,
                                      "EXPERIMENTHUB_MLFLOW_URI": "http://user:db-pass@mlflow:5000",
                                      "EXPERIMENTHUB_RABBITMQ_URL": "amqp://hub:mq-pass@rabbit/%2F"})
    assert settings.api_token == secret
    for text in (repr(settings), str(settings)):
        assert secret not in text and "db-pass" not in text and "mq-pass" not in text
        assert "http://user:***@mlflow:5000" in text and "amqp://hub:***@rabbit/%2F" in text
    assert settings.mlflow_uri == "http://user:db-pass@mlflow:5000"  # redacted only for display
    token_file = tmp_path / "token"
    token_file.write_text(f"  {secret}-from-file\n")
    from_file = Settings.from_env(env={"EXPERIMENTHUB_TOKEN_FILE": str(token_file), "EXPERIMENTHUB_TOKEN": "other"})
    assert from_file.api_token == f"{secret}-from-file" and from_file.token_file == token_file
    assert secret not in repr(from_file) and secret not in str(from_file)
    yaml_file = tmp_path / "hub.yaml"
    yaml_file.write_text(f"token_file: {token_file}\n")
    assert Settings.from_env(env={}, config_file=str(yaml_file)).api_token == f"{secret}-from-file"
    assert Settings.from_env(env={}, token_file=token_file).api_token == f"{secret}-from-file"


def test_token_problems_name_the_key_not_the_token(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    with pytest.raises(InvalidConfig, match="token_file from EXPERIMENTHUB_TOKEN_FILE: .*is empty") as caught:
        Settings.from_env(env={"EXPERIMENTHUB_TOKEN_FILE": str(empty)})
    assert caught.value.key == "token_file"
    with pytest.raises(InvalidConfig, match="token_file from the argument: cannot read") as caught:
        Settings.from_env(env={}, token_file=str(tmp_path / "missing"))
    assert caught.value.key == "token_file"
    with pytest.raises(InvalidConfig, match="token from EXPERIMENTHUB_TOKEN: the token is blank") as caught:
        Settings.from_env(env={"EXPERIMENTHUB_TOKEN": "   "})
    yaml_file = tmp_path / "hub.yaml"
    yaml_file.write_text("token: 123456789\n")  # not a string: rejected without echoing it
    with pytest.raises(InvalidConfig, match="token from .*hub.yaml") as caught:
        Settings.from_env(env={}, config_file=str(yaml_file))
    assert "123456789" not in str(caught.value) and caught.value.__cause__ is None


@pytest.mark.parametrize(("uri", "redacted"), [
    ("amqp://hub:s3cret@rabbit:5672/%2F", "amqp://hub:***@rabbit:5672/%2F"),
    ("http://user:pw@mlflow:5000/path?x=1#f", "http://user:***@mlflow:5000/path?x=1#f"),
    ("postgresql+psycopg2://u:p%40ss@db/mlflow", "postgresql+psycopg2://u:***@db/mlflow"),
    ("https://u:p@ss@host/", "https://u:***@host/"),  # an unencoded "@" in the password
    ("https://user@host/", "https://user@host/"),  # no password
    ("https://user:@host/", "https://user:@host/"),  # an empty one
    ("http://mlflow:5000", "http://mlflow:5000"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("http://[::1", "http://[::1"),  # not parseable as a URL: returned as is, no exception
    ("", ""),
    (None, None),
])
def test_redact_uri(uri, redacted):
    assert redact_uri(uri) == redacted


def test_redact_text_redacts_every_uri():
    text = "could not reach 'amqp://a:one@mq/' nor (http://b:two@ml:5000) as user:pass"
    assert redact_text(text) == "could not reach 'amqp://a:***@mq/' nor (http://b:***@ml:5000) as user:pass"
    assert redact_text("nothing here") == "nothing here"


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
