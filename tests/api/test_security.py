"""What keeps web pages, foreign hosts, leaked tokens and huge bodies away from the live kernel.

Real HTTP over sockets, against ``hub.serve(port=0)`` and ``experimenthub serve`` subprocesses.
Browsers are imitated by the headers they send: ``Origin``, ``Sec-Fetch-Site`` and, for DNS
rebinding, a ``Host`` naming the attacker's domain.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from helpers import free_port, wait_for

from experimenthub import ExperimentHub, datasets
from experimenthub.api.logs import redact_path
from experimenthub.api.security import is_loopback, split_host
from experimenthub.api.server import InsecureBinding
from experimenthub.client import ExperimentHubClient
from experimenthub.errors import ExperimentHubError, InvalidConfig
from experimenthub.settings import Settings

EXE = str(Path(sys.executable).with_name("experimenthub"))
SECRET = "tok-3f9a1c-never-in-logs"
LIMIT = 1024 * 1024  # a small body limit keeps the oversized uploads fast


def make_hub(home: Path, env: dict[str, str] | None = None, **settings) -> ExperimentHub:
    return ExperimentHub(Settings.from_env(env=env or {}, home=str(home), **settings), warm_up=False)


def add_experiment(hub: ExperimentHub, name: str) -> None:
    """An experiment that exists without occupying the machine: created, then stopped at once."""
    data = datasets.load("prophet_daily").head(60)
    hub.create_experiment(name, "time_series", {"setup": {"target": "y"}}, data=data)
    hub.stop_training(name)


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory):
    """No token (the default: the seed's client sends none), a 1 MiB body limit."""
    hub = make_hub(tmp_path_factory.mktemp("open-hub"), max_body_bytes=LIMIT)
    server = hub.serve(port=0)
    yield hub, server
    hub.close()


@pytest.fixture
def token_hub(tmp_path):
    """A token from the environment variable: serve() without a token argument uses it."""
    hub = make_hub(tmp_path, env={"EXPERIMENTHUB_TOKEN": SECRET})
    yield hub, hub.serve(port=0)
    hub.close()


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPERIMENTHUB_", "MLFLOW_"))}
    return {**env, "EXPERIMENTHUB_HOME": str(home), **extra}


# -- browsers: cross-site writes -------------------------------------------------------------------
def test_cross_site_writes_are_refused_and_the_experiment_stays(open_hub):
    hub, server = open_hub
    add_experiment(hub, "sales")
    url = f"{server.url}/sales/delete"
    for headers in ({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://evil.example"},
                    {"Sec-Fetch-Site": "cross-site"},  # no Origin, but the browser says where it comes from
                    {"Origin": "null"},  # a sandboxed frame or a file:// page
                    {"Origin": f"http://127.0.0.1:{free_port()}", "Sec-Fetch-Site": "same-site"},  # other port
                    {"Origin": f"https://127.0.0.1:{server.port}"}):  # other scheme
        answer = requests.post(url, headers={**headers, "Content-Type": "text/plain"}, data="x", timeout=10)
        assert answer.status_code == 403, (headers, answer.text)
        detail = answer.json()["detail"]
        assert "EXPERIMENTHUB_ALLOWED_ORIGINS" in detail and f"127.0.0.1:{server.port}" in detail
        assert "sales" in hub.experiments
    # a cross-site page may read nothing either: a state-changing "simple" request was the hole
    assert requests.post(f"{server.url}/create_experiment/evil/time_series", timeout=10,
                         headers={"Origin": "http://evil.example"}, json={}).status_code == 403
    assert "evil" not in hub.experiments


def test_same_origin_and_program_writes_are_allowed(open_hub):
    hub, server = open_hub
    add_experiment(hub, "from_docs")
    add_experiment(hub, "from_program")
    # the docs page (Swagger's "Try it out") posts with the server's own origin
    same_origin = requests.post(f"{server.url}/from_docs/delete", timeout=10,
                                headers={"Origin": server.url, "Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 200 and "from_docs" not in hub.experiments
    localhost = f"http://localhost:{server.port}"  # the seed's base URL names localhost
    assert requests.post(f"{localhost}/flush/q", headers={"Origin": localhost}, timeout=10).status_code == 200
    # programs (requests, curl, the seed's client) send no Origin at all
    assert requests.post(f"{server.url}/from_program/delete", timeout=10).status_code == 200
    assert "from_program" not in hub.experiments


def test_docs_page_works_same_origin(open_hub):
    _, server = open_hub
    browser = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    assert requests.get(f"{server.url}/docs", timeout=10, headers={"Sec-Fetch-Site": "none"}).status_code == 200
    schema = requests.get(f"{server.url}/openapi.json", timeout=10, headers={**browser, "Referer": server.url})
    assert schema.status_code == 200 and "/{name}/delete" in schema.json()["paths"]
    # no permissive CORS: a foreign page gets no Access-Control-Allow-Origin
    foreign = requests.get(f"{server.url}/experiments", timeout=10, headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers
    preflight = requests.options(f"{server.url}/x/delete", timeout=10, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


# -- browsers: DNS rebinding -----------------------------------------------------------------------
def test_foreign_host_is_refused_without_a_token(open_hub):
    hub, server = open_hub
    add_experiment(hub, "quarterly")
    for path in ("/experiments", "/quarterly/train_data", "/quarterly/cfg", "/health", "/docs"):
        answer = requests.get(f"{server.url}{path}", headers={"Host": "attacker.example"}, timeout=10)
        assert answer.status_code == 403, (path, answer.text)
        detail = answer.json()["detail"]
        assert set(answer.json()) == {"detail"} and "quarterly" not in answer.text and "2007-" not in answer.text
        assert f"http://127.0.0.1:{server.port}" in detail and "EXPERIMENTHUB_ALLOWED_HOSTS" in detail
        assert "token" in detail
    assert requests.post(f"{server.url}/quarterly/delete", headers={"Host": f"attacker.example:{server.port}"},
                         timeout=10).status_code == 403
    assert "quarterly" in hub.experiments
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost", f"[::1]:{server.port}",
                 "LOCALHOST:1"):
        assert requests.get(f"{server.url}/experiments", headers={"Host": host}, timeout=10).status_code == 200
    for host in ("127.0.0.1.attacker.example", "localhost.attacker.example", "localhost:80@evil", "[::1"):
        assert requests.get(f"{server.url}/experiments", headers={"Host": host}, timeout=10).status_code == 403


def test_allowed_hosts_and_origins(tmp_path):
    hub = make_hub(tmp_path, env={"EXPERIMENTHUB_ALLOWED_HOSTS": "hub.example, *.corp.example",
                                  "EXPERIMENTHUB_ALLOWED_ORIGINS": "http://app.example:3000"})
    server = hub.serve(port=0)
    try:
        def get(host: str) -> int:
            return requests.get(f"{server.url}/experiments", headers={"Host": host}, timeout=10).status_code

        assert get("hub.example") == 200 and get(f"hub.example:{server.port}") == 200
        assert get("x.corp.example:443") == 200
        assert get("attacker.example") == 403 and get("hub.example.attacker.example") == 403
        post = requests.post(f"{server.url}/flush/q", timeout=10,
                             headers={"Origin": "http://app.example:3000", "Sec-Fetch-Site": "cross-site"})
        assert post.status_code == 200 and post.headers["access-control-allow-origin"] == "http://app.example:3000"
        preflight = requests.options(f"{server.url}/flush/q", timeout=10, headers={
            "Origin": "http://app.example:3000", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 200
        assert requests.post(f"{server.url}/flush/q", headers={"Origin": "http://app.example:3001"},
                             timeout=10).status_code == 403
    finally:
        hub.close()
    star = make_hub(tmp_path / "star", allowed_origins=("*",))
    with pytest.raises(InvalidConfig, match="allowed_origins"):
        star.serve(port=0)
    assert star.server is None
    star.close()


# -- tokens ----------------------------------------------------------------------------------------
def test_token_only_from_headers(token_hub):
    _, server = token_hub
    url = f"{server.url}/experiments"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"X-ExperimentHub-Token": "wrong"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10).json() == {}
    assert requests.get(url, headers={"Authorization": f"bearer {SECRET}"}, timeout=10).status_code == 200
    assert requests.get(url, headers={"X-ExperimentHub-Token": SECRET}, timeout=10).status_code == 200
    # a Jupyter server in front owns Authorization: the hub's token travels in its own header
    jupyter = {"Authorization": "token jupyter-token", "X-ExperimentHub-Token": SECRET}
    assert requests.get(url, headers=jupyter, timeout=10).status_code == 200
    in_url = requests.get(f"{url}?token={SECRET}", timeout=10)
    assert in_url.status_code == 401 and "Authorization: Bearer" in in_url.json()["detail"]
    assert "X-ExperimentHub-Token" in in_url.json()["detail"]
    both = requests.get(f"{url}?token={SECRET}", headers={"Authorization": f"Bearer {SECRET}"}, timeout=10)
    assert both.status_code == 401  # a token in the URL is refused even next to a good header
    assert requests.get(url, headers={"Authorization": f"Bearer {SECRET}ü"}, timeout=10).status_code == 401
    # the token also answers under a foreign Host and from a foreign origin: a page cannot add headers
    assert requests.get(url, headers={"Host": "hub.public.example", "X-ExperimentHub-Token": SECRET},
                        timeout=10).status_code == 200
    assert requests.get(url, headers={"Host": "attacker.example"}, timeout=10).status_code == 401
    for client in (ExperimentHubClient(server.url, token=SECRET),
                   ExperimentHubClient(server.url, token=SECRET, token_header="X-ExperimentHub-Token")):
        assert client.get_experiments() == {} and SECRET not in repr(client)
    # the docs stay readable, with an Authorize button sending the token as a Bearer header
    schema = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())
    assert requests.get(f"{server.url}/docs", headers={"Host": "hub.public.example"}, timeout=10).ok


def test_token_never_in_repr_or_logs(token_hub, caplog, capfd):
    hub, server = token_hub
    assert SECRET not in repr(server) and SECRET not in str(server)
    assert "authenticated=True" in repr(server)
    assert SECRET not in repr(hub.settings)
    with caplog.at_level(logging.DEBUG):
        requests.get(f"{server.url}/experiments?token={SECRET}", timeout=10)
        requests.get(f"{server.url}/experiments", headers={"Authorization": f"Bearer {SECRET}"}, timeout=10)
        requests.get(f"{server.url}/nothing/status", headers={"X-ExperimentHub-Token": SECRET}, timeout=10)
        requests.get(f"{server.url}/experiments", headers={"Authorization": "Bearer wrong"}, timeout=10)
    out, err = capfd.readouterr()
    # the server's side: every logger but the test's own HTTP client (urllib3 logs the URL it requests)
    server_side = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("urllib3"))
    assert SECRET not in server_side and SECRET not in out and SECRET not in err


def test_token_setting_from_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(f"{SECRET}\n")
    hub = make_hub(tmp_path / "home", env={"EXPERIMENTHUB_TOKEN_FILE": str(token_file)})
    try:
        server = hub.serve(port=0)
        assert server.authenticated
        url = f"{server.url}/experiments"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10).status_code == 200
    finally:
        hub.close()


# -- binding beyond loopback -----------------------------------------------------------------------
def test_serving_beyond_loopback_without_a_token(tmp_path, caplog):
    hub = make_hub(tmp_path)
    try:
        for host in ("0.0.0.0", "::", "192.0.2.1", "my-laptop.example"):
            with pytest.raises(InsecureBinding, match="without a token") as caught:
                hub.serve(host=host, port=0)
            assert isinstance(caught.value, PermissionError) and isinstance(caught.value, ExperimentHubError)
            for how in ("EXPERIMENTHUB_TOKEN", "127.0.0.1", "allow_unauthenticated=True", "--allow-unauthenticated"):
                assert how in str(caught.value)
        assert hub.server is None
        with caplog.at_level(logging.WARNING, logger="experimenthub"):
            server = hub.serve(host="0.0.0.0", port=0, allow_unauthenticated=True)
            assert hub.serve(host="0.0.0.0", port=0, allow_unauthenticated=True) is server  # the cell re-run
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "no token" in r.getMessage()]
        assert len(warnings) == 1, caplog.text
        assert "0.0.0.0" in warnings[0].getMessage()
        local = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{local}/experiments", timeout=10).json() == {}
        # from the network it would be reached under a public name: refused without the token
        assert requests.get(f"{local}/experiments", headers={"Host": f"192.0.2.1:{server.port}"},
                            timeout=10).status_code == 403
        hub.stop_server()
        with_token = hub.serve(host="0.0.0.0", port=0, token=SECRET)  # a token: no refusal, no warning
        assert with_token.authenticated and len([r for r in caplog.records if "no token" in r.getMessage()]) == 1
    finally:
        hub.close()


def test_allow_unauthenticated_setting(tmp_path, caplog):
    hub = make_hub(tmp_path, env={"EXPERIMENTHUB_ALLOW_UNAUTHENTICATED": "true"})
    try:
        with caplog.at_level(logging.WARNING, logger="experimenthub"):
            server = hub.serve(host="0.0.0.0", port=0)
        assert server.running and "no token" in caplog.text
    finally:
        hub.close()


# -- body limits -----------------------------------------------------------------------------------
def raw_request(port: int, head: bytes, body_parts: list[bytes], timeout: float = 10.0) -> bytes:
    """Send ``head`` and ``body_parts`` (the body's start only) and read the answer until the server
    closes: the answer comes while the client has not sent the whole body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_body_above_the_limit_is_413(open_hub):
    hub, server = open_hub
    big = {"setup": {"target": "y"}, "data": [{"ds": "2020-01-01", "y": 1.0, "pad": "x" * 1000}] * 2000}
    answer = requests.post(f"{server.url}/create_experiment/too_big/time_series", json=big, timeout=30)
    assert answer.status_code == 413
    detail = answer.json()["detail"]
    assert str(LIMIT) in detail and "EXPERIMENTHUB_MAX_BODY_BYTES" in detail
    assert "too_big" not in hub.experiments
    # under the limit the same endpoint still works (a body of the wrong shape: 422, not 413)
    assert requests.post(f"{server.url}/create_experiment/small/time_series", json=[1], timeout=10).status_code == 422
    # an endpoint without a body is refused too, before it acts
    add_experiment(hub, "keep")
    assert requests.post(f"{server.url}/keep/delete", data=b"x" * (LIMIT + 1), timeout=30).status_code == 413
    assert "keep" in hub.experiments


def test_declared_length_is_refused_before_the_body_is_read(open_hub):
    hub, server = open_hub
    declared = 50 * LIMIT
    head = (f"POST /create_experiment/declared/time_series HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode()
    started = time.monotonic()
    answer = raw_request(server.port, head, [b'{"setup": '])  # 10 of the 50 MiB announced
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"EXPERIMENTHUB_MAX_BODY_BYTES" in answer and time.monotonic() - started < 5
    assert "declared" not in hub.experiments


def test_chunked_body_is_counted_as_it_arrives(open_hub):
    hub, server = open_hub
    head = (f"POST /create_experiment/chunked/time_series HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    piece = b" " * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    count = LIMIT // len(piece)  # the limit exactly, then a small chunk past it; never the final empty chunk
    answer = raw_request(server.port, head, [chunk] * count + [b"10\r\n" + b" " * 16 + b"\r\n"])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"EXPERIMENTHUB_MAX_BODY_BYTES" in answer
    assert "chunked" not in hub.experiments

    def streamed():  # the same through requests: a generator body is sent chunked
        for _ in range(count + 4):
            yield piece

    assert requests.post(f"{server.url}/create_experiment/chunked/time_series", data=streamed(),
                         headers={"Content-Type": "application/json"}, timeout=30).status_code == 413
    assert "chunked" not in hub.experiments
    # a chunked body under the limit is read normally
    small = requests.post(f"{server.url}/publish/q", data=iter([b'[{"a": 1}, ', b'{"a": 2}]']),
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert small.status_code == 200 and "2 rows" in small.json()["message"]


# -- URIs with passwords -----------------------------------------------------------------------------
def test_health_redacts_the_tracking_password(tmp_path):
    hub = ExperimentHub(home=str(tmp_path), warm_up=False,
                        mlflow_uri="postgresql://user:secret@127.0.0.1:5432/nosuchdb")
    try:
        server = hub.serve(port=0)
        health = requests.get(f"{server.url}/health", timeout=60)
        assert health.status_code == 200 and "secret" not in health.text
        assert health.json()["mlops"]["details"]["uri"] == "postgresql://user:***@127.0.0.1:5432/nosuchdb"
        assert health.json()["mlops"]["healthy"] is False
        assert "secret" not in repr(hub.settings)
    finally:
        hub.close()


# -- small pieces ------------------------------------------------------------------------------------
def test_host_names_and_log_redaction():
    assert all(map(is_loopback, ["localhost", "LOCALHOST.", "127.0.0.1", "127.8.9.10", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "", "localhost.example", "10.0.0.1"]))
    assert split_host("[::1]:8010") == ("::1", "8010") and split_host("Hub.Example") == ("hub.example", None)
    assert redact_path(f"/experiments?token={SECRET}&x") == "/experiments?token=***&***"
    assert redact_path("/health") == "/health"


# -- the command line ------------------------------------------------------------------------------
def run_server(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([EXE, "serve", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_answering(process: subprocess.Popen, port: int) -> None:
    def answers() -> bool:
        assert process.poll() is None, process.communicate()
        try:
            requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5)
        except requests.ConnectionError:
            return False
        return True

    wait_for(answers, 120, "experimenthub serve to answer")


def stop(process: subprocess.Popen) -> tuple[str, str]:
    process.terminate()
    try:
        return process.communicate(timeout=120)  # the hub closes first (its worker may still be warming up)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def test_cli_refuses_the_network_without_a_token(tmp_path):
    result = subprocess.run([EXE, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "without a token" in result.stderr and "--allow-unauthenticated" in result.stderr
    assert "--token-file" in result.stderr and "Traceback" not in result.stderr


def test_cli_allow_unauthenticated_starts_and_warns(tmp_path):
    port = free_port()
    process = run_server(["--host", "0.0.0.0", "--port", str(port), "--allow-unauthenticated"],
                         clean_env(tmp_path, EXPERIMENTHUB_MLFLOW_URI="postgresql://user:secret@127.0.0.1:1/nodb"))
    try:
        wait_answering(process, port)
        assert requests.get(f"http://127.0.0.1:{port}/experiments", timeout=10).json() == {}
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=60)
        assert "secret" not in health.text and "user:***@" in health.text
    finally:
        out, err = stop(process)
    assert err.count("WARNING: the REST API on 0.0.0.0 has no token") == 1, err
    assert "user:***@127.0.0.1:1/nodb" in out and "secret" not in out + err


def test_cli_token_file_and_redacted_access_log(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    port = free_port()
    process = run_server(["--port", str(port), "--token-file", str(token_file)], clean_env(tmp_path / "home"))
    try:
        wait_answering(process, port)
        url = f"http://127.0.0.1:{port}/experiments"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(f"{url}?token={SECRET}", timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10).status_code == 200
        assert requests.get(url, headers={"X-ExperimentHub-Token": SECRET}, timeout=10).status_code == 200
    finally:
        out, err = stop(process)
    assert SECRET not in out + err
    assert '"GET /experiments?token=*** HTTP/1.1" 401' in out + err  # access logging is on, and masked
    assert "token required" in out


def test_cli_token_from_the_environment(tmp_path):
    port = free_port()
    process = run_server(["--host", "0.0.0.0", "--port", str(port), "--no-access-log"],
                         clean_env(tmp_path, EXPERIMENTHUB_TOKEN=SECRET))
    try:
        wait_answering(process, port)  # 0.0.0.0 with a token: no refusal
        url = f"http://127.0.0.1:{port}/experiments"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10).status_code == 200
    finally:
        out, err = stop(process)
    assert "no token" not in err and SECRET not in out + err and "GET /experiments" not in out + err


def test_cli_error_lines_mask_passwords(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,2\n")
    result = subprocess.run([EXE, "publish", "q", str(rows), "--rabbitmq-url", "http://user:secret@host/"],
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "user:***@host" in result.stderr and "secret" not in result.stderr
