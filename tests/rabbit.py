"""Plain-pika helpers for the RabbitMQ tests: what an outside publisher or operator would do, never
our own datastream code. The broker is the real one on 127.0.0.1:5672 (CI starts it; so does
``rabbitmq-server -detached``); the helpers take ``url=`` for another one, such as the
:class:`PrivateNode` the fault tests start, stop and restart (tests/faults/)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import uuid

import pika
import pika.exceptions

URL = os.environ.get("EXPERIMENTHUB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
ERROR_HEADER = "x-experimenthub-error"


def connect(url: str = URL) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.AMQPConnectionError as exc:
        raise RuntimeError(f"RabbitMQ must answer at {url} for these tests (start it with "
                           f"`rabbitmq-server -detached`): {exc!r}") from exc


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def message_count(queue: str, url: str = URL) -> int | None:
    """Ready messages in ``queue`` by a passive declare; None when the queue does not exist."""
    connection = connect(url)
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return None
        raise
    finally:
        connection.close()


def delete_queues(*queues: str, url: str = URL) -> None:
    connection = connect(url)
    try:
        for queue in queues:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.close()
    finally:
        connection.close()


def publish(queue: str, bodies: list[bytes | str], message_ids: bool = True, url: str = URL) -> None:
    connection = connect(url)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(queue, durable=True)
        for body in bodies:
            properties = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                              message_id=uuid.uuid4().hex if message_ids else None)
            channel.basic_publish("", queue, body.encode() if isinstance(body, str) else body, properties)
    finally:
        connection.close()


def dead_letters(queue: str, url: str = URL) -> list[tuple[bytes, str]]:
    """(body, reason header) of each message in ``<queue>.dead``, left in place."""
    connection = connect(url)
    try:
        channel = connection.channel()
        found = []
        while True:
            method, properties, body = channel.basic_get(queue + ".dead")
            if method is None:
                break
            reason = (properties.headers or {}).get(ERROR_HEADER)
            found.append((body, reason.decode() if isinstance(reason, bytes) else reason))
        return found  # closing the connection puts them back
    finally:
        connection.close()


# A publisher in a separate process, with nothing of ours imported: plain pika, bodies from a file.
PUBLISHER = """
import json, sys, uuid, pika
url, queue, path = sys.argv[1:4]
bodies = json.load(open(path))
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.confirm_delivery()
channel.queue_declare(queue, durable=True)
for body in bodies:
    channel.basic_publish("", queue, body.encode(), pika.BasicProperties(
        content_type="application/json", delivery_mode=2, message_id=uuid.uuid4().hex))
connection.close()
print(len(bodies))
"""


def publish_from_another_process(queue: str, bodies: list[str], tmp_path) -> None:
    import sys

    path = tmp_path / f"{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(bodies))
    out = subprocess.run([sys.executable, "-c", PUBLISHER, URL, queue, str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(bodies))


def connection_pids(name_part: str) -> list[str]:
    """Broker-side pids of the connections whose client-given name contains ``name_part``."""
    out = subprocess.run(["rabbitmqctl", "list_connections", "pid", "client_properties", "-q"],
                         capture_output=True, text=True, timeout=60, check=True)
    pids = []
    for line in out.stdout.splitlines():
        pid, _, properties = line.partition("\t")
        if '{"connection_name","' in properties and name_part in properties:
            pids.append(pid)
    return pids


def close_connections(name_part: str, reason: str = "test closes the hub's connections") -> int:
    pids = connection_pids(name_part)
    for pid in pids:
        subprocess.run(["rabbitmqctl", "close_connection", pid, reason], capture_output=True, text=True,
                       timeout=60, check=True)
    return len(pids)


class Proxy:
    """A TCP proxy to the broker on a port of its own: ``stop()`` is an outage for whoever connects
    through it (connections dropped, new ones refused), ``start()`` brings the broker back."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            sockets, self._sockets = list(self._sockets), set()
        if server is not None:
            server.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, server: socket.socket) -> None:
        server.settimeout(0.05)
        while self._server is server:
            try:
                client, _ = server.accept()
                client.settimeout(None)
                upstream = socket.create_connection(self.target)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self._server is not server:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# -- a private broker node the fault tests may stop, kill and start freely ------------------------------------------
_DEBIAN_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # what Debian's /usr/sbin wrapper runs as `rabbitmq`
_CLI_DIST_PORTS = range(35672, 35683)  # rabbitmqctl's own distribution ports (RABBITMQ_CTL_DIST_PORT_MIN..+10)


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, none in the range rabbitmqctl itself listens on."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in ports and port not in _CLI_DIST_PORTS:
            ports.append(port)
    return ports


class PrivateNode:
    """A RabbitMQ node of the tests' own, never the machine's shared broker: its own node name, AMQP
    port, distribution port, epmd (on a port of its own), data, log and plugins paths, config
    files (the shared node's /etc/rabbitmq/rabbitmq-env.conf and rabbitmq.conf are not read), all
    in a temporary directory owned by the ``rabbitmq`` user.

    Debian's ``/usr/sbin/rabbitmq-server`` wrapper switches to that user with ``su``, which starts
    the node in a session of its own, so a test could neither tell when it is down nor kill it
    without hunting for it by name. The node is therefore started the way the wrapper does it
    (``/usr/lib/rabbitmq/bin/rabbitmq-server`` as ``rabbitmq``, with the cookie in its home) but
    as a child in a new process group of its own: the script runs beam.smp in the background and
    waits for it, so the child ends when the node does. ``kill()`` is a crash (SIGKILL to that
    group), ``stop()`` a clean shutdown (SIGTERM, which the script turns into a proper stop),
    ``start()`` brings it back on the same ports with the same data (durable queues and persistent
    messages survive). ``close()`` stops the node and its epmd and removes the directory.

    The default ``guest`` user logs in from loopback, which is all ``url`` needs."""

    START_TIMEOUT = 60.0

    @staticmethod
    def unavailable() -> str | None:
        """Why a private node cannot be started here (None when it can)."""
        import pwd
        import shutil

        if not os.path.exists(_DEBIAN_SERVER):
            return f"RabbitMQ's server scripts are not installed ({_DEBIAN_SERVER}: apt-get install rabbitmq-server)"
        if shutil.which("epmd") is None:
            return "epmd (Erlang) is not on PATH"
        try:
            uid = pwd.getpwnam("rabbitmq").pw_uid
        except KeyError:
            return "there is no `rabbitmq` user"
        if os.geteuid() not in (0, uid):
            return "a private RabbitMQ node must be started by root or the `rabbitmq` user (as Debian's wrapper does)"
        return None

    def __init__(self) -> None:
        import pwd
        import tempfile
        from pathlib import Path

        self.node = f"ehfault-{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port, self.epmd_port = _free_ports(3)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        user = pwd.getpwnam("rabbitmq")
        self._home = user.pw_dir  # its Erlang cookie, which rabbitmqctl reads too
        self._as_user: dict = {} if os.geteuid() == user.pw_uid else {
            "user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.dir = Path(tempfile.mkdtemp(prefix="eh-rabbit-node-"))
        for sub in ("mnesia", "log", "etc"):
            (self.dir / sub).mkdir()
        (self.dir / "etc" / "rabbitmq.conf").write_text("# a private node for the fault tests; ports come from "
                                                         "RABBITMQ_NODE_PORT and RABBITMQ_DIST_PORT\n")
        (self.dir / "etc" / "rabbitmq-env.conf").write_text("")
        (self.dir / "etc" / "enabled_plugins").write_text("[].\n")
        for path in (self.dir, *self.dir.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)
        self.dir.chmod(0o755)
        self.log = self.dir / "log" / f"{self.node}.log"
        self._output = self.dir / "server.out"
        self._process: subprocess.Popen | None = None
        self._epmd: subprocess.Popen | None = None
        self._groups: list[int] = []  # the process groups started (leftovers() looks in them)

    @property
    def env(self) -> dict[str, str]:
        """The environment of the node (and of ``rabbitmqctl -n NODE`` run as ``rabbitmq`` to talk to it)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        etc = self.dir / "etc"
        env.update({
            "HOME": self._home,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_START_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(etc / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(etc / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(etc / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(etc / "rabbitmq-env.conf"),
        })
        return env

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        parts = []
        for path in (self._output, self.log):
            if path.exists():
                parts.append(f"--- {path.name}:\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts) or "(no log written)"

    def start(self) -> None:
        """Start the node (its epmd first) and return once ``guest`` can log in over AMQP; a node
        that does not answer within START_TIMEOUT s is killed and the failure shows its log."""
        import time

        if self.running:
            return
        if self._epmd is None or self._epmd.poll() is not None:
            self._epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                          env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True, **self._as_user)
            self._groups.append(self._epmd.pid)
            deadline = time.monotonic() + 10
            while not self._listening(self.epmd_port):  # the node would start an epmd -daemon of its own
                if self._epmd.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"epmd did not listen on port {self.epmd_port}")
                time.sleep(0.02)
        output = open(self._output, "ab")  # noqa: SIM115 - the child holds it; closed below
        try:
            self._process = subprocess.Popen([_DEBIAN_SERVER], cwd=self.dir, env=self.env,
                                             stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                             start_new_session=True, **self._as_user)
        finally:
            output.close()
        self._groups.append(self._process.pid)
        deadline = time.monotonic() + self.START_TIMEOUT
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"the private RabbitMQ node {self.node} exited with {self._process.returncode} "
                                   f"while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the private RabbitMQ node {self.node} did not answer on port {self.port} "
                                   f"within {self.START_TIMEOUT:.0f} s:\n{self.log_tail()}")
            try:
                self._process.wait(0.2)  # returns early if it dies
            except subprocess.TimeoutExpired:
                pass

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    def _answers(self) -> bool:
        params = pika.URLParameters(self.url)
        params.connection_attempts, params.socket_timeout, params.blocked_connection_timeout = 1, 1.0, 2.0
        try:
            pika.BlockingConnection(params).close()
        except Exception:  # refused, reset, a handshake timeout (not all of them are pika AMQPErrors)
            return False
        return True

    def stop(self, timeout: float = 60.0) -> None:
        """A clean shutdown: SIGTERM to the server script, whose trap stops the node properly (as
        ``rabbitmqctl stop`` would, without the CLI's start-up second); clients see
        CONNECTION_FORCED, then refused connections. Returns once the node's process is gone."""
        import signal

        if not self.running:
            return
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"the private RabbitMQ node {self.node} did not stop within {timeout:.0f} s "
                               f"of SIGTERM:\n{self.log_tail()}") from None
        self.kill()  # nothing of the group may linger (a no-op when the node ended cleanly)

    def kill(self) -> None:
        """A crash: SIGKILL to the node's process group (the script, beam.smp and its helpers), no
        goodbye to clients (their sockets are reset). Returns once every one of them is gone."""
        import signal
        import time

        if self._process is None:
            return
        group = self._process.pid
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:  # the whole group is gone already
            pass
        self._process.wait(30)
        deadline = time.monotonic() + 30
        while self._group_alive(group):  # the script is reaped; beam.smp may take a moment more
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of group {group} outlived SIGKILL: {self.leftovers()}")
            time.sleep(0.02)

    @staticmethod
    def _group_alive(group: int) -> bool:
        return any(pgrp == group for _, pgrp, _ in _processes())

    def close(self) -> None:
        """Stop the node (kill it if it will not stop) and its epmd; remove the directory."""
        import shutil

        try:
            try:
                self.stop(timeout=30)
            finally:
                self.kill()
                if self._epmd is not None and self._epmd.poll() is None:
                    self._epmd.terminate()
                    try:
                        self._epmd.wait(10)
                    except subprocess.TimeoutExpired:
                        self._epmd.kill()
                        self._epmd.wait(10)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Processes of this node still alive (zombies aside): any in the process groups it started
        (the server script, beam.smp, erl_child_setup, inet_gethost; its epmd)."""
        return [f"{pid}: {cmdline[:200]}" for pid, pgrp, cmdline in _processes() if pgrp in self._groups]


def _processes() -> list[tuple[int, int, str]]:
    """(pid, process group, command line) of every live process, from /proc (zombies left out)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if fields[0] != "Z":
            found.append((int(entry), int(fields[2]), cmdline))
    return found
