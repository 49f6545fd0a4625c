"""Shared fixtures: real MLflow (embedded sqlite and a real ``mlflow server``), real data sets.

The MLflow server is started once per session on a free loopback port and stopped at the end.
Tests that take the ``hub`` fixture run twice: against the embedded store and the server.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests
from helpers import free_port, stop_process_group

from experimenthub import ExperimentHub, datasets

ROOT = Path(__file__).resolve().parents[1]
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


@contextlib.contextmanager
def start_mlflow_server(backend_store_uri: str, workdir: Path):
    """``mlflow server`` on a free loopback port (proxied artifacts under ``workdir``), stopped after."""
    port = free_port()
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - held open for the server's lifetime
    process = subprocess.Popen(
        [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(workdir / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(workdir / 'server.log').read_text()[-3000:]}")
            try:
                if requests.get(uri + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not answer /health within 120 s")
            time.sleep(0.3)
        yield uri
    finally:
        stop_process_group(process)
        log.close()


@pytest.fixture(scope="session")
def mlflow_server():
    """A real ``mlflow server`` (sqlite backend, proxied artifacts) on a free loopback port."""
    workdir = Path(tempfile.mkdtemp(prefix="eh-mlflow-server-"))
    with start_mlflow_server(f"sqlite:///{workdir / 'mlflow.db'}", workdir) as uri:
        yield uri
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_mlflow_server():
    """A real ``mlflow server`` whose backend store is a new database on the machine's PostgreSQL
    (127.0.0.1:5432, trust auth): the shared setup of several kernels writing to one store."""
    database = f"experimenthub_test_{uuid.uuid4().hex[:12]}"
    psql = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    subprocess.run([*psql, "-c", f"CREATE DATABASE {database}"], check=True, capture_output=True, timeout=60)
    workdir = Path(tempfile.mkdtemp(prefix="eh-mlflow-pg-"))
    with start_mlflow_server(f"postgresql://postgres@127.0.0.1:5432/{database}", workdir) as uri:
        yield uri
    subprocess.run([*psql, "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], capture_output=True,
                   timeout=60)
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

