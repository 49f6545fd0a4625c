"""A real Jupyter kernel SIGKILLed in the middle of a training: nothing of it stays running, and the
next kernel's hub marks the orphaned run FAILED (saying why) and restores the experiments it had."""

from __future__ import annotations

import json
import os
import signal
import sys

import psutil
import pytest
from helpers import run_cell, wait_for
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from experimenthub import ExperimentHub

LONG = {"setup": {"target": "temp_f"}, "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 400}}}


@pytest.fixture
def kernel_factory(tmp_path):
    specs = tmp_path / "kernels"
    (specs / "eh").mkdir(parents=True)
    (specs / "eh" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ExperimentHub crash test", "language": "python"}))
    managers = []

    def start():
        manager = KernelManager(kernel_name="eh", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]))
        manager.start_kernel(cwd=str(tmp_path))
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        managers.append((manager, client))
        return manager, client

    yield start
    for manager, client in managers:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def test_sigkilled_kernel_leaves_nothing_running_and_the_next_kernel_recovers(kernel_factory, tmp_path):
    home = tmp_path / "home"
    manager, client = kernel_factory()
    run_cell(client, f"""
        from experimenthub import ExperimentHub, datasets
        hub = ExperimentHub(home={str(home)!r})
        daily = datasets.load("prophet_daily")
        hub.create_experiment("kept", "time_series", {{"create_model": {{"model_type": "Prophet", "params": {{}}}}}},
                              data=daily)
        hub.wait("kept", tracked=True)
        hub.create_experiment("crashing", "time_series", {json.dumps(LONG)},
                              data=datasets.load("seattle_temps_hourly_2010"))
    """, timeout=300)
    run_id = run_cell(client, """
        import time
        while hub.status("crashing").stage != "fitting" or hub.status("crashing").run_id is None:
            time.sleep(0.05)
        print(hub.status("crashing").run_id)
    """, timeout=300)
    kernel_pid = int(run_cell(client, "import os; print(os.getpid())"))
    wait_for(lambda: any("prophet_model.bin" in " ".join(p.cmdline()) for p in descendants(kernel_pid)), 120,
             "CmdStan to run under the kernel")
    left = descendants(kernel_pid)
    assert left, "the kernel's worker server and its job should be running"

    os.kill(kernel_pid, signal.SIGKILL)
    wait_for(lambda: gone(left), 30, "every process the killed kernel started to be gone")

    _, client2 = kernel_factory()  # a new kernel on the same store: the crash is noticed and repaired
    restored = run_cell(client2, f"""
        from experimenthub import ExperimentHub
        hub = ExperimentHub(home={str(home)!r})
        print(sorted(hub.restore()))
    """, timeout=300)
    assert restored == "['kept']"  # the crashed training has no finished model run to bring back
    with ExperimentHub(home=str(home), warm_up=False) as observer:
        run_info = wait_for(lambda: (r := observer.tracking.get_run(run_id)).status == "FAILED" and r, 60,
                            "the orphaned run to be marked FAILED")
        assert "ended while the run was RUNNING" in run_info.tags["experimenthub.failure"]
        assert str(kernel_pid) in run_info.tags["experimenthub.failure"]
    assert run_cell(client2, 'print(hub.predict("kept").shape[0])') == "30"
    assert run_cell(client2, 'print(hub.status("kept").stage)') == "loaded"
