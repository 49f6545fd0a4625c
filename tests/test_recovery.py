"""Recovery from the tracking store: runs orphaned by a dead process are marked FAILED (and only
those), and ``restore()`` brings back every experiment not deleted, loading each on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from experimenthub import ExperimentHub, RunNotFound, recovery

PROPHET = {"setup": {"target": "value"}, "create_model": {"model_type": "Prophet", "params": {}}}


def test_restore_lists_at_once_and_loads_on_first_use(tmp_path, tracking_uri, daily):
    home = str(tmp_path / "home")
    with ExperimentHub(home=home, mlflow_uri=tracking_uri) as first:
        for name in ("north", "south", "gone"):
            first.create_experiment(name, "time_series", PROPHET, data=daily)
        first.wait(["north", "south", "gone"], tracked=True, progress=False)
        first.retrain("south")
        first.wait("south", tracked=True)
        latest_south = first.run_id("south")
        first.delete("gone")

    with ExperimentHub(home=home, mlflow_uri=tracking_uri) as second:
        restored = second.restore()  # (a shared server holds other tests' experiments too)
        assert {"north", "south"} <= set(restored) and "gone" not in restored  # deleted: its runs stay, skipped
        status = second.status("south")
        assert (status.state, status.stage, status.run_id) == ("ready", "stored", latest_south)
        assert second.experiments["north"].stored and "mae" in status.metrics
        assert second.plot_names("north")[0] == ["forecast", "components", "anomalies"]  # listed, not loaded
        assert second.experiments["north"].stored
        assert len(second.predict("north")) == 30  # first use loads it
        assert second.status("north").stage == "loaded" and not second.experiments["north"].stored
        assert second.experiments["south"].stored
        assert second.restore() == []  # what the hub holds stays as it is
        with pytest.raises(RunNotFound, match="gone"):
            second.restore(["gone"])

    with ExperimentHub(home=home, mlflow_uri=tracking_uri) as third:
        third.create_experiment("gone", "time_series", PROPHET, data=daily)  # the name lives again
        third.wait("gone", tracked=True)
    with ExperimentHub(home=home, mlflow_uri=tracking_uri) as fourth:
        assert sorted(fourth.restore(["gone", "north"])) == ["gone", "north"]


def dead_identity() -> str:
    """The lease identity of a process that has exited."""
    code = "from experimenthub import recovery; print(recovery.lease_tags()['experimenthub.owner'])"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=60)
    return out.strip()


@pytest.fixture
def quiet_hub(tmp_path):
    """No warm-up: the hub's own reap on connecting would race the one this test makes."""
    with ExperimentHub(home=str(tmp_path / "home"), warm_up=False) as hub:
        yield hub


def test_only_runs_of_dead_processes_on_this_host_are_reaped(quiet_hub):
    tracking = quiet_hub.tracking
    host = recovery.lease_tags()[recovery.TAG_HOST]
    runs = {
        "dead": tracking.start_run("leases", "dead", {recovery.TAG_HOST: host, recovery.TAG_OWNER: dead_identity()}),
        "alive": tracking.start_run("leases", "alive", recovery.lease_tags()),
        "elsewhere": tracking.start_run("leases", "elsewhere", {recovery.TAG_HOST: "another-host",
                                                                recovery.TAG_OWNER: "1:1"}),
        "reused_pid": tracking.start_run("leases", "reused", {recovery.TAG_HOST: host,
                                                              recovery.TAG_OWNER: recovery.lease_tags()[
                                                                  recovery.TAG_OWNER].split(":")[0] + ":1"}),
    }
    reaped = recovery.reap_orphans(tracking)
    assert sorted(reaped) == sorted([runs["dead"].run_id, runs["reused_pid"].run_id])
    for key, run in runs.items():
        info = tracking.get_run(run.run_id)
        expected = "FAILED" if key in ("dead", "reused_pid") else "RUNNING"
        assert info.status == expected, key
        assert ("experimenthub.failure" in info.tags) == (expected == "FAILED")
    assert recovery.reap_orphans(tracking) == []  # done once
