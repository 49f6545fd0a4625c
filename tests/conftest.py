"""Shared fixtures: real MLflow (embedded sqlite and a real ``mlflow server``), real data sets.

The MLflow server is started once per session on a free loopback port and stopped at the end.
Tests that take the ``hub`` fixture run twice: against the embedded store and the server.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from helpers import free_port, stop_process_group

from experimenthub import ExperimentHub, datasets

ROOT = Path(__file__).resolve().parents[1]
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


@pytest.fixture(scope="session")
def mlflow_server():
    """A real ``mlflow server`` (sqlite backend, proxied artifacts) on a free loopback port."""
    workdir = Path(tempfile.mkdtemp(prefix="eh-mlflow-server-"))
    port = free_port()
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - held open for the server's lifetime
    process = subprocess.Popen(
        [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
         "--artifacts-destination", str(workdir / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(workdir / 'server.log').read_text()[-3000:]}")
        try:
            if requests.get(uri + "/health", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("mlflow server did not answer /health within 120 s")
        time.sleep(0.3)
    yield uri
    stop_process_group(process)
    log.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["embedded", "server"])
def tracking_uri(request, tmp_path):
    """None: the embedded sqlite store under the hub's home; else the real server's URI."""
    if request.param == "embedded":
        return None
    return request.getfixturevalue("mlflow_server")


@pytest.fixture
def hub(tmp_path, tracking_uri):
    with ExperimentHub(home=str(tmp_path / "home"), mlflow_uri=tracking_uri) as hub:
        yield hub


@pytest.fixture
def embedded_hub(tmp_path):
    """A hub on embedded defaults only, for tests whose subject is not tracking."""
    with ExperimentHub(home=str(tmp_path / "home")) as hub:
        yield hub


@pytest.fixture(scope="session")
def daily():
    """Prophet's own test data: 510 daily rows, renamed as in the seed's config (ds, value)."""
    return datasets.load("prophet_daily").rename(columns={"y": "value"})


@pytest.fixture(scope="session")
def hourly():
    return datasets.load("seattle_temps_hourly_2010")


@pytest.fixture(scope="session")
def tep():
    return {name: datasets.load(f"tep_{name}") for name in ("normal_train", "normal_test", "idv01_test")}

