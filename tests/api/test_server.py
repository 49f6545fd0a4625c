"""The server inside a process: start, re-run, replace, taken port, stop and start again, Voila."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import requests
from helpers import wait_for

from experimenthub import ExperimentHub
from experimenthub.api.server import PortInUse


@pytest.fixture
def new_hub(tmp_path):
    hubs = []

    def make():
        hub = ExperimentHub(home=str(tmp_path / f"home{len(hubs)}"), warm_up=False)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop_server()


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_rerun_returns_the_running_server(new_hub):
    hub = new_hub()
    first = hub.serve(port=0)
    assert first.url.startswith("http://127.0.0.1:") and first.running
    assert hub.serve() is first and hub.serve(port=first.port) is first  # re-running the cell
    assert hub.server is first
    assert requests.get(f"{first.url}/health", timeout=5).status_code == 200


def test_new_hub_on_the_same_port_replaces_the_old_server(new_hub, daily):
    old = new_hub()
    old_server = old.serve(port=0)
    old.create_experiment("only_in_old", "time_series", {"setup": {"target": "y"}}, data=daily.rename(
        columns={"value": "y"}))
    new = new_hub()  # re-running `hub = ExperimentHub(); hub.serve(port=...)` in a notebook
    new_server = new.serve(port=old_server.port)
    assert new_server.port == old_server.port and not old_server.running
    assert requests.get(f"{new_server.url}/experiments", timeout=5).json() == {}
    old.stop_training("only_in_old")


def test_taken_port_is_a_clear_error_at_once(new_hub):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
        "print(s.getsockname()[1], flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        port = int(holder.stdout.readline())
        hub = new_hub()
        with pytest.raises(PortInUse, match=f"Port {port} on 127.0.0.1 is already in use"):
            hub.serve(port=port)
        assert hub.server is None
        assert isinstance(PortInUse("x"), OSError)
    finally:
        holder.kill()


def test_stop_frees_the_port_and_start_again(new_hub):
    hub = new_hub()
    server = hub.serve(port=0)
    port = server.port
    requests.get(f"{server.url}/experiments", timeout=5)  # a connection that went through
    assert hub.stop_server() is True
    wait_for(lambda: refused(port), 2, "the port to be free")  # the bound: free within 2 s
    again = hub.serve(port=port)
    assert again.port == port and requests.get(f"{again.url}/health", timeout=5).ok
    assert hub.stop_server() is True and hub.stop_server() is False


def test_under_voila_each_kernel_gets_its_own_port(new_hub, monkeypatch):
    monkeypatch.setenv("SERVER_SOFTWARE", "voila/0.5.13")
    first, second = new_hub().serve(), new_hub().serve()
    assert first.port != second.port and first.running and second.running
    assert 8010 not in (first.port, second.port)


def test_loopback_by_default(new_hub):
    server = new_hub().serve(port=0)
    assert server.host == "127.0.0.1"
