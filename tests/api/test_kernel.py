"""The REST server in a real Jupyter kernel (jupyter_client): the notebook and REST clients share
one hub, and the kernel keeps executing cells while trainings run."""

from __future__ import annotations

import json
import sys
import time

import pytest
import requests
from helpers import SEED_CONFIG, free_port, run_cell
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    specs = tmp_path_factory.mktemp("kernels")
    (specs / "eh").mkdir()
    (specs / "eh" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ExperimentHub test", "language": "python"}))
    manager = KernelManager(kernel_name="eh", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]))
    manager.start_kernel(cwd=str(tmp_path_factory.mktemp("kernel-cwd")))
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def test_kernel_and_rest_share_one_hub(kernel, tmp_path, daily_records):
    port = free_port()
    url = run_cell(kernel, f"""
        from experimenthub import ExperimentHub
        hub = ExperimentHub(home={str(tmp_path)!r})
        server = hub.serve(port={port})
        print(server.url)
    """)
    assert url == f"http://127.0.0.1:{port}"
    assert run_cell(kernel, f"print(hub.serve(port={port}) is server)") == "True"  # re-running the cell

    config = {**SEED_CONFIG, "data": daily_records}
    requests.post(f"{url}/create_experiment/rest_exp/time_series", json=config, timeout=30).raise_for_status()
    deadline = time.monotonic() + 120
    while requests.get(f"{url}/rest_exp/status", timeout=10).json()["state"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert run_cell(kernel, "print(hub.experiments['rest_exp'].state)") == "ready"

    run_cell(kernel, f"""
        import pandas as pd
        frame = pd.DataFrame({daily_records!r})
        hub.create_experiment("cell_exp", "time_series", {SEED_CONFIG!r}, data=frame)
        print(hub.wait("cell_exp", timeout=120).state)
    """)
    assert "cell_exp" in requests.get(f"{url}/experiments", timeout=10).json()


def test_kernel_executes_cells_while_trainings_run(kernel, daily_records):
    url = run_cell(kernel, "print(server.url)")
    slow = {"setup": {"target": "value"}, "create_model": {"model_type": "Prophet",
                                                           "params": {"mcmc_samples": 300}},
            "data": daily_records}
    for name in ("busy1", "busy2"):
        requests.post(f"{url}/create_experiment/{name}/time_series", json=slow, timeout=30).raise_for_status()
    states = []
    for i in range(20):  # trivial cells keep running while the two fits do
        assert run_cell(kernel, f"print({i} + 1)", timeout=10) == str(i + 1)
        states.append(run_cell(kernel, "print(hub.status('busy1').state)", timeout=10))
    assert "training" in states
    for name in ("busy1", "busy2"):
        assert requests.post(f"{url}/{name}/stop_training", timeout=10).json()["status"] == "success"
    assert run_cell(kernel, "print(hub.status('busy2').state)") == "stopped"
    run_cell(kernel, "hub.stop_server(); print(hub.server)")
