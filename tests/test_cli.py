"""The command line: the standalone server answers the seed's endpoints; demo trains both types."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from helpers import free_port

EXE = str(Path(sys.executable).with_name("experimenthub"))


def test_serve_in_the_foreground(tmp_path):
    port = free_port()
    env = dict(os.environ, EXPERIMENTHUB_HOME=str(tmp_path))
    process = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                if response.json()["mlops"]["details"]["status"] != "starting":
                    break
            except requests.ConnectionError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "experimenthub serve did not answer within 60 s"
            time.sleep(0.2)
        assert response.json()["mlops"]["healthy"] is True
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
