"""A hub served over real HTTP on a free loopback port, shared by a test module."""

from __future__ import annotations

import pytest
from helpers import wait_for

from experimenthub import ExperimentHub, datasets
from experimenthub.tables import to_records


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    hub = ExperimentHub(home=str(tmp_path_factory.mktemp("api-home")))
    server = hub.serve(port=0)
    # a new home's MLflow says "starting" while it creates its database (seconds on a loaded machine);
    # the seed's flow begins with /health and expects it connected, as after any real start-up
    wait_for(lambda: hub.health()["mlops"]["details"]["status"] != "starting", 120, "MLflow to finish starting")
    yield hub, server
    hub.stop_server()
    hub.close()


@pytest.fixture(scope="module")
def daily_records():
    return to_records(datasets.load("prophet_daily").rename(columns={"y": "value"}))
