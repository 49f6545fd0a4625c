"""The command line: the standalone server answers the seed's endpoints; demo trains both types."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests
from helpers import free_port, wait_for

EXE = str(Path(sys.executable).with_name("experimenthub"))


def test_serve_in_the_foreground(tmp_path):
    port = free_port()
    env = dict(os.environ, EXPERIMENTHUB_HOME=str(tmp_path))
    process = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)

    def started() -> dict | None:
        try:
            health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        except requests.ConnectionError:
            assert process.poll() is None, process.stdout.read()
            return None
        return health if health["mlops"]["details"]["status"] != "starting" else None

    try:
        # one bound for both phases: answering at all, and MLflow done starting (a new store)
        health = wait_for(started, 120, "experimenthub serve to answer /health with MLflow started")
        assert health["mlops"]["healthy"] is True
        assert "time_series" in requests.get(f"http://127.0.0.1:{port}/available_experiments").json()
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_demo_trains_both_types(tmp_path):
    result = subprocess.run([EXE, "demo", "--home", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(": ready in") == 2
    assert "IDV(1) fault detected on" in result.stdout
    assert len(list((tmp_path / "figures").rglob("*.html"))) >= 10


def test_serve_restore_lists_the_experiments_of_the_store(tmp_path, daily):
    from experimenthub import ExperimentHub

    with ExperimentHub(home=str(tmp_path)) as hub:
        hub.create_experiment("kept", "time_series", {"setup": {"target": "value"}}, data=daily)
        hub.wait("kept", tracked=True)
    port = free_port()
    env = dict(os.environ, EXPERIMENTHUB_HOME=str(tmp_path))
    process = subprocess.Popen([EXE, "serve", "--port", str(port), "--restore"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)

    def listed() -> dict | None:
        try:
            return requests.get(f"http://127.0.0.1:{port}/experiments", timeout=5).json()
        except requests.ConnectionError:
            assert process.poll() is None, process.stdout.read()
            return None

    try:
        experiments = wait_for(listed, 120, "experimenthub serve --restore to answer")
        assert list(experiments) == ["kept"]
        status = requests.get(f"http://127.0.0.1:{port}/kept/status", timeout=30).json()
        assert status["state"] == "ready" and status["stage"] == "stored"
        assert requests.post(f"http://127.0.0.1:{port}/kept/predict", timeout=120).text == "Prediction called"
    finally:
        process.terminate()
        process.wait(timeout=120)
