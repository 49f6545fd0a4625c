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
