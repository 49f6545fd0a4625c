"""A real ``mlflow server`` killed while the hub writes a run behind, then started again on the same
port and store: the writes wait and retry, health shows the outage meanwhile, and the run is
complete once the server is back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
from helpers import free_port, stop_process_group, wait_for
from test_many import GatedModel

from experimenthub import ExperimentHub

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


class MlflowServer:
    """An ``mlflow server`` on a fixed port and store that a test may kill and start again."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - the server's own log, closed with it
        self.process = subprocess.Popen(
            [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
             "--artifacts-destination", str(self.workdir / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        log.close()

        def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, (
                (self.workdir / "server.log").read_text()[-3000:])
            try:
                return requests.get(self.uri + "/health", timeout=1).ok
            except requests.RequestException:
                return False

        wait_for(answers, 120, "the mlflow server to answer")

    def kill(self) -> None:
        assert self.process is not None
        stop_process_group(self.process)
        wait_for(lambda: not _listening(self.port), 30, "the mlflow server's port to close")


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        stop_process_group(server.process)


def test_writes_behind_wait_for_a_restarted_server(server, tmp_path):
    with ExperimentHub(home=str(tmp_path / "home"), mlflow_uri=server.uri) as hub:
        hub.register_experiment_type("gated", GatedModel)
        gate = tmp_path / "gate"
        hub.create_experiment("survivor", "gated", {"gate": str(gate)}, data=pd.DataFrame({"y": [1.0, 2.0, 6.0]}))
        run_id = wait_for(lambda: hub.status("survivor").run_id, 120, "the run to be opened")
        wait_for(lambda: hub.status("survivor").stage == "fitting", 120, "the fit to start")

        server.kill()
        gate.touch()  # the fit ends while the store is down: the model is ready, its run written behind
        assert hub.wait("survivor", timeout=120).state == "ready"
        assert hub.status("survivor").tracking == "logging"
        outage = wait_for(lambda: (h := hub.health(max_age=0)["mlops"])["healthy"] is False and h, 60,
                          "health to show the outage")
        assert outage["details"]["status"] == "unreachable"
        wait_for(lambda: hub.health(max_age=0)["mlops"]["details"]["writes"]["retrying"] >= 1, 60,
                 "the write to be waiting for a retry")
        assert hub.status("survivor").tracking == "logging"  # not failed: the store is only away

        server.start()
        status = hub.wait("survivor", timeout=180, tracked=True)
        assert status.tracking == "logged"
        assert hub.health(max_age=0)["mlops"]["healthy"] is True
        run = hub.tracking.get_run(run_id)
        assert run.status == "FINISHED" and run.metrics["mean"] == 3.0
        assert hub.tracking.download(run_id, "model/mean.txt", str(tmp_path / "dl"))
        assert hub.load("survivor").model == 3.0
