"""Bad input raises the documented error with a message a person can act on, and harms nothing."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from helpers import SEED_CONFIG

from experimenthub import (
    DataError,
    ExperimentExists,
    ExperimentHub,
    ExperimentNotFound,
    InvalidConfig,
    InvalidName,
    NoData,
    UnknownExperimentType,
)


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory, daily):
    with ExperimentHub(home=str(tmp_path_factory.mktemp("bad-input"))) as hub:
        hub.create_experiment("good", "time_series", SEED_CONFIG, data=daily)
        hub.wait("good", timeout=120)
        yield hub


@pytest.fixture
def trained(shared_hub, daily):
    """A hub with one ready experiment that each bad request must leave untouched."""
    before = shared_hub.predict("good", daily.tail(5))
    run_id = shared_hub.run_id("good")
    yield shared_hub
    assert set(shared_hub.experiments) == {"good"}
    status = shared_hub.status("good")
    assert status.state == "ready" and status.error is None and status.run_id == run_id
    after = shared_hub.predict("good", daily.tail(5))
    pd.testing.assert_frame_equal(before, after)


def with_params(**params):
    config = copy.deepcopy(SEED_CONFIG)
    config["create_model"]["params"].update(params)
    return config


CASES = [
    ("unknown type", dict(experiment_type="invalid_type"), UnknownExperimentType,
     r"Unknown experiment type: invalid_type\. Available types: .*'time_series'"),
    ("unknown model_type", dict(config={"setup": {"target": "value"}, "create_model": {"model_type": "ARIMA"}}),
     InvalidConfig, r"create_model\.model_type.*choices: Prophet"),
    ("unknown param", dict(config=with_params(seasonality="x")), InvalidConfig,
     r"create_model\.params\.seasonality.*choices: .*seasonality_mode"),
    ("bad param value", dict(config=with_params(seasonality_mode="cubic")), InvalidConfig,
     r"Prophet rejected the parameters: seasonality_mode"),
    ("config not a mapping", dict(config=["setup"]), InvalidConfig, r"mapping"),
    ("section not a mapping", dict(config={"setup": "value"}), InvalidConfig, r"'setup' must be a JSON object"),
    ("unknown section", dict(config={"setpu": {}}), InvalidConfig, r"setpu.*allowed keys.*setup"),
    ("missing target column", dict(config={"setup": {"target": "sales", "ds": "ds"}}), DataError,
     r"\['sales'\] not in the data; columns present: \['ds', 'value'\]"),
    ("missing ds column", dict(config={"setup": {"target": "value", "ds": "date"}}), DataError,
     r"\['date'\] not in the data"),
    ("non-numeric target", dict(data_change=lambda d: d.assign(value=["n/a"] + list(d["value"][1:]))),
     DataError, r"'value' must be numeric.*'n/a'"),
    ("bad timestamps", dict(data_change=lambda d: d.assign(ds=["yesterday"] + list(d["ds"][1:]))),
     DataError, r"'ds' must hold timestamps.*'yesterday'"),
    ("empty data", dict(data_change=lambda d: d.iloc[0:0]), NoData, r"0 rows"),
    ("NaN in target", dict(data_change=lambda d: d.assign(value=d["value"].where(d.index % 50 != 0))), DataError,
     r"missing values.*'value': 11.*setup\.missing"),
    ("infinite target", dict(data_change=lambda d: d.assign(value=d["value"].replace(d["value"][3], np.inf))),
     DataError, r"infinite"),
    ("bad name", dict(name="my experiment!"), InvalidName, r"letters, digits"),
    ("reserved name", dict(name="health"), InvalidName, r"path of the REST API"),
    ("data not a table", dict(data_override=42), DataError, r"must be a table"),
    ("no data anywhere", dict(data_override=None), NoData, r"publish them to the queue 'new'"),
]


@pytest.mark.parametrize("case, change, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_create_raises_and_harms_nothing(trained, daily, case, change, error, message):
    config = change.get("config", SEED_CONFIG)
    data = change["data_change"](daily) if "data_change" in change else daily
    if "data_override" in change:
        data = change["data_override"]
    with pytest.raises(error, match=message):
        trained.create_experiment(change.get("name", "new"), change.get("experiment_type", "time_series"),
                                  config, data=data)


def test_duplicate_and_unknown_names(trained, daily):
    with pytest.raises(ExperimentExists, match="already exists"):
        trained.create_experiment("good", "time_series", SEED_CONFIG, data=daily)
    for call in (trained.status, trained.predict, trained.delete, trained.stop_training, trained.save,
                 trained.train_data, trained.cfg, trained.run_id):
        with pytest.raises(ExperimentNotFound, match="'missing'.*Known experiments: 'good'"):
            call("missing")
    assert isinstance(ExperimentNotFound("x"), LookupError)


def test_bad_predict_input_keeps_the_experiment(trained):
    with pytest.raises(DataError, match=r"\['ds'\] not in the rows to predict"):
        trained.predict("good", pd.DataFrame({"when": ["2020-01-01"]}))
    with pytest.raises(NoData):
        trained.predict("good", pd.DataFrame({"ds": []}))


def test_inline_records_and_queue_as_data_sources(embedded_hub, daily):
    from experimenthub.tables import to_records

    config = copy.deepcopy(SEED_CONFIG)
    config["data"] = to_records(daily)
    embedded_hub.create_experiment("inline", "time_series", config)
    embedded_hub.publish("queued", daily.iloc[:300])
    embedded_hub.publish("queued", daily.iloc[300:])
    embedded_hub.create_experiment("queued", "time_series", SEED_CONFIG)
    assert embedded_hub.wait("inline", timeout=120).state == "ready"
    assert embedded_hub.wait("queued", timeout=120).state == "ready"
    assert "data" not in embedded_hub.cfg("inline")
    assert len(embedded_hub.train_data("inline")) == len(embedded_hub.train_data("queued")) == len(daily)
    assert embedded_hub.datastream.depth("queued") == 0  # acknowledged after training succeeded


def test_queue_messages_go_back_when_training_fails(embedded_hub, daily):
    embedded_hub.publish("q", daily.drop(columns="value").assign(other=1.0))
    with pytest.raises(DataError, match="not in the data"):
        embedded_hub.create_experiment("q", "time_series", SEED_CONFIG)
    assert embedded_hub.datastream.depth("q") == 1  # nothing lost
    assert embedded_hub.flush("q") == 1 and embedded_hub.datastream.depth("q") == 0
