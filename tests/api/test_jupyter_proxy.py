"""The kernel's API behind a Jupyter server: ``<server>/proxy/<port>/`` through jupyter-server-proxy.

First without a Jupyter server (a fake ``jpserver-<pid>.json`` naming this process): what the hub
finds, and what the Guard and the docs make of the headers the proxy sends. Then for real: a
``jupyter server`` subprocess, a kernel started through its REST API, ``hub.serve()`` run in that
kernel, and ``ExperimentHubClient`` going through the proxy with the Jupyter token (and refused
without it, by Jupyter, before our API sees the request).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from helpers import SEED_CONFIG, free_port, run_cell, stop_process_group, wait_for

from experimenthub import ExperimentHub
from experimenthub.api.jupyter import JupyterServer, find_server
from experimenthub.client import APIError, ExperimentHubClient
from experimenthub.settings import Settings

JUPYTER_TOKEN = "jupyter-tok-5d2e8b"
HUB_TOKEN = "hub-tok-a17c44"


def write_server_file(runtime: Path, pid: int, **info) -> None:
    runtime.mkdir(parents=True, exist_ok=True)
    info = {"url": "http://127.0.0.1:18888/user/ana/", "base_url": "/user/ana/", "pid": pid,
            "token": JUPYTER_TOKEN, "port": 18888, "secure": False, **info}
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps(info))


# -- finding the Jupyter server ------------------------------------------------------------------------
def test_find_server(tmp_path):
    runtime = tmp_path / "runtime"
    write_server_file(runtime, 4242)
    write_server_file(runtime, 5151, url="http://127.0.0.1:9999/", base_url="/", token="")
    (runtime / "jpserver-7.json").write_text("{ half written")
    found = find_server({"JPY_PARENT_PID": "4242"}, str(runtime))
    assert found == JupyterServer(url="http://127.0.0.1:18888/user/ana/", base_url="/user/ana/", pid=4242,
                                  token=JUPYTER_TOKEN)
    assert JUPYTER_TOKEN not in repr(found)
    # the URL already ends with the base_url: it is not repeated
    assert found.proxy_url(8010) == "http://127.0.0.1:18888/user/ana/proxy/8010/"
    assert found.proxy_path(8010) == "/user/ana/proxy/8010/"
    no_token = find_server({"JPY_PARENT_PID": "5151"}, str(runtime))
    assert no_token is not None and no_token.token is None
    assert no_token.proxy_url(1) == "http://127.0.0.1:9999/proxy/1/"
    # another launcher's kernel (nbclient, console), no variable, junk, no runtime dir: None, no error
    for environ, directory in (({"JPY_PARENT_PID": "99"}, runtime), ({}, runtime),
                               ({"JPY_PARENT_PID": "x"}, runtime), ({"JPY_PARENT_PID": "4242"}, tmp_path / "none")):
        assert find_server(environ, str(directory)) is None
    write_server_file(runtime, 6161, url="http+unix://%2Ftmp%2Fjp.sock/", base_url="/")
    assert find_server({"JPY_PARENT_PID": "6161"}, str(runtime)) is None  # no URL to proxy through


@pytest.fixture
def fake_jupyter(tmp_path, monkeypatch):
    """This process passes for a kernel of a Jupyter server at 127.0.0.1:18888/user/ana/."""
    runtime = tmp_path / "runtime"
    write_server_file(runtime, os.getpid())
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))


def make_hub(home: Path, **settings) -> ExperimentHub:
    return ExperimentHub(Settings.from_env(env={}, home=str(home), **settings), warm_up=False)


def test_serve_reports_the_proxy_url_and_accepts_the_jupyter_token(fake_jupyter, tmp_path, caplog):
    hub = make_hub(tmp_path / "home")
    try:
        with caplog.at_level("INFO", logger="experimenthub.api.server"):
            server = hub.serve(port=0)
        assert server.proxy_url == f"http://127.0.0.1:18888/user/ana/proxy/{server.port}/"
        assert server.proxy_path == f"/user/ana/proxy/{server.port}/"
        assert [r for r in caplog.records if server.proxy_url in r.getMessage()]  # logged once, at start
        for shown in (repr(server), server._repr_html_(), caplog.text):
            assert JUPYTER_TOKEN not in shown
        assert server.proxy_url in repr(server)
        assert f'href="/user/ana/proxy/{server.port}/docs"' in server._repr_html_()

        url = f"{server.url}/experiments"
        public = "hub.mybinder.example"  # the Jupyter server's public name, passed on by the proxy

        def get(host: str | None = None, **headers: str) -> int:
            return requests.get(url, headers={**({"Host": host} if host else {}), **headers}, timeout=10).status_code

        assert get() == 200  # loopback, no token: as before
        for credentials in ({"Authorization": f"token {JUPYTER_TOKEN}"}, {"Authorization": f"Bearer {JUPYTER_TOKEN}"},
                            {"X-ExperimentHub-Token": JUPYTER_TOKEN}):
            assert get(public, **credentials) == 200, credentials
        # DNS rebinding: a foreign Host without a valid token stays refused, forwarding headers or not
        assert get(public) == 403
        assert get(public, Authorization="token wrong") == 403
        spoofed = {"X-Forwarded-Prefix": f"/proxy/{server.port}", "X-ProxyContextPath": f"/proxy/{server.port}",
                   "X-Forwarded-Host": "127.0.0.1", "X-Forwarded-For": "127.0.0.1"}
        assert get(public, **spoofed) == 403
        answer = requests.get(url, headers={"Host": public}, timeout=10)
        assert "Authorization: token" in answer.json()["detail"]
    finally:
        hub.close()


def test_with_a_hub_token_both_tokens_work(fake_jupyter, tmp_path):
    hub = make_hub(tmp_path / "home")
    try:
        server = hub.serve(port=0, token=HUB_TOKEN)
        url = f"{server.url}/experiments"
        assert requests.get(url, timeout=10).status_code == 401
        missing = requests.get(url, headers={"Authorization": "token wrong"}, timeout=10)
        assert missing.status_code == 401 and "Authorization: token <Jupyter token>" in missing.json()["detail"]
        for client in (ExperimentHubClient(server.url, token=JUPYTER_TOKEN, token_scheme="token"),
                       ExperimentHubClient(server.url, token=HUB_TOKEN),
                       ExperimentHubClient(server.url, token="a JupyterHub API token", token_scheme="token",
                                           hub_token=HUB_TOKEN)):
            assert client.get_experiments() == {}
            assert JUPYTER_TOKEN not in repr(client) and HUB_TOKEN not in repr(client)
        with pytest.raises(APIError) as refused:
            ExperimentHubClient(server.url, token="wrong", token_scheme="token").get_experiments()
        assert refused.value.status_code == 401
    finally:
        hub.close()


def test_no_jupyter_server_no_proxy_url(tmp_path, monkeypatch):
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    hub = make_hub(tmp_path / "home")
    try:
        server = hub.serve(port=0)
        assert server.proxy_url is None and server.proxy_path is None and "proxy" not in repr(server)
        assert "proxy" not in server._repr_html_()
        # a Jupyter-looking token means nothing here: a foreign Host stays refused
        assert requests.get(f"{server.url}/experiments", timeout=10,
                            headers={"Host": "x.example", "Authorization": "token anything"}).status_code == 403
    finally:
        hub.close()


def test_docs_under_the_proxy_prefix(tmp_path):
    """The headers jupyter-server-proxy adds (and its absolute mode's full path) give the docs their
    root path; direct access, and junk or foreign prefixes, keep the plain one."""
    hub = make_hub(tmp_path / "home")
    try:
        server = hub.serve(port=0)
        port = server.port

        def docs(path: str = "/docs", **headers: str) -> str:
            answer = requests.get(f"{server.url}{path}", headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            return answer.text

        assert "'/openapi.json'" in docs()
        for header in ("X-Forwarded-Prefix", "X-ProxyContextPath"):
            assert f"'/user/ana/proxy/{port}/openapi.json'" in docs(**{header: f"/user/ana/proxy/{port}"})
        assert f"'/proxy/{port}/openapi.json'" in docs(**{"X-Forwarded-Prefix": f"/proxy/{port}/"})
        for junk in (f"/proxy/{port + 1}", "/somewhere/else", f"/x'</script><script>alert(1)//proxy/{port}",
                     f"/proxy/{port}?a=b"):
            text = docs(**{"X-Forwarded-Prefix": junk})
            assert "'/openapi.json'" in text and "alert" not in text, junk
        # absolute mode: the full path arrives, no prefix headers
        assert f"'/proxy/absolute/{port}/openapi.json'" in docs(f"/proxy/absolute/{port}/docs")
        schema = requests.get(f"{server.url}/proxy/absolute/{port}/openapi.json", timeout=10).json()
        assert schema["servers"] == [{"url": f"/proxy/absolute/{port}"}]
        assert requests.get(f"{server.url}/proxy/absolute/{port}/experiments", timeout=10).json() == {}
        assert requests.get(f"{server.url}/proxy/absolute/{port + 1}/experiments", timeout=10).status_code == 404
        # the schema lists the prefix only for the request that came with it: nothing is stored
        prefixed = requests.get(f"{server.url}/openapi.json", timeout=10,
                                headers={"X-Forwarded-Prefix": f"/proxy/{port}"}).json()
        assert prefixed["servers"] == [{"url": f"/proxy/{port}"}]
        assert "servers" not in requests.get(f"{server.url}/openapi.json", timeout=10).json()
    finally:
        hub.close()


# -- a real Jupyter server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """``jupyter server`` on a free loopback port with a token; its kernels use this interpreter."""
    base = tmp_path_factory.mktemp("jupyter")
    runtime, root, data = base / "runtime", base / "root", base / "data"
    for folder in (runtime, root, data / "kernels" / "ehtest"):
        folder.mkdir(parents=True)
    (data / "kernels" / "ehtest" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ExperimentHub test", "language": "python"}))
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("EXPERIMENTHUB_", "JPY_", "JUPYTER_"))},
           "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_PATH": str(data)}
    log = (base / "server.log").open("w")
    # allow_remote_access: requests may name a public Host (as under JupyterHub or Binder)
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
         "--port-retries=0", f"--IdentityProvider.token={JUPYTER_TOKEN}", f"--ServerApp.root_dir={root}",
         "--ServerApp.allow_remote_access=True", "--allow-root"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"jupyter server exited ({process.returncode}):\n"
                                     f"{(base / 'server.log').read_text()[-4000:]}")
            try:
                return requests.get(f"{url}/api/status", headers={"Authorization": f"token {JUPYTER_TOKEN}"},
                                    timeout=5).ok
            except requests.ConnectionError:
                return False

        try:
            wait_for(up, 120, "jupyter server to answer")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{(base / 'server.log').read_text()[-4000:]}") from None
        yield {"url": url, "port": port, "runtime": runtime, "log": base / "server.log"}
    finally:
        stop_process_group(process)  # the server and the kernels it started (same session)
        log.close()


@pytest.fixture(scope="module")
def kernel(jupyter):
    """A kernel started through the Jupyter server's REST API, driven over its connection file."""
    from jupyter_client import BlockingKernelClient

    auth = {"Authorization": f"token {JUPYTER_TOKEN}"}
    started = requests.post(f"{jupyter['url']}/api/kernels", json={"name": "ehtest"}, headers=auth, timeout=60)
    assert started.status_code == 201, started.text
    kernel_id = started.json()["id"]
    client = BlockingKernelClient(connection_file=str(jupyter["runtime"] / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        yield client
    finally:
        client.stop_channels()
        requests.delete(f"{jupyter['url']}/api/kernels/{kernel_id}", headers=auth, timeout=60)


def test_through_a_real_jupyter_server(jupyter, kernel, tmp_path, daily_records):
    port, proxy_url = run_cell(kernel, f"""
        from experimenthub import ExperimentHub
        hub = ExperimentHub(home={str(tmp_path)!r})
        server = hub.serve(port=0)
        print(server.port, server.proxy_url)
    """).split()
    assert proxy_url == f"{jupyter['url']}/proxy/{port}/"

    client = ExperimentHubClient(proxy_url, token=JUPYTER_TOKEN, token_scheme="token")
    assert "mlops" in client.check_health()
    records = daily_records[:150]
    client.create_experiment("via_proxy", "time_series", {**SEED_CONFIG, "data": records})
    assert client.wait_until_ready("via_proxy", timeout=300)["state"] == "ready"
    assert run_cell(kernel, "print(hub.experiments['via_proxy'].state)") == "ready"  # the kernel's own hub

    # the docs through the proxy load the prefixed schema, which answers
    auth = {"Authorization": f"token {JUPYTER_TOKEN}"}
    docs = requests.get(f"{proxy_url}docs", headers=auth, timeout=30)
    assert docs.status_code == 200 and f"'/proxy/{port}/openapi.json'" in docs.text
    schema = requests.get(f"{jupyter['url']}/proxy/{port}/openapi.json", headers=auth, timeout=30)
    assert schema.status_code == 200 and schema.json()["servers"] == [{"url": f"/proxy/{port}"}]

    # a public name for the Jupyter server (JupyterHub, Binder): our Guard lets the Jupyter token in
    public = {**auth, "Host": "hub.binder.example"}
    assert requests.get(f"{proxy_url}experiments", headers=public, timeout=30).json()["via_proxy"]

    # without the Jupyter token (or with a wrong one) Jupyter refuses before our API sees anything
    for headers in ({}, {"Authorization": "token wrong"}, {"Authorization": "Bearer wrong"}):
        for method, path in (("GET", "experiments"), ("GET", "docs"), ("POST", "via_proxy/delete")):
            answer = requests.request(method, f"{proxy_url}{path}", headers=headers, timeout=30,
                                      allow_redirects=False)
            assert answer.status_code in (302, 401, 403), (headers, path, answer.status_code)
            if answer.status_code == 302:
                assert "/login" in answer.headers["Location"]
            assert "via_proxy" not in answer.text and "openapi" not in answer.text, (headers, path)
    assert run_cell(kernel, "print(sorted(hub.experiments))") == "['via_proxy']"
    run_cell(kernel, "hub.close(); print(hub.server)")
