"""Plain-pika helpers for the RabbitMQ tests: what an outside publisher or operator would do, never
our own datastream code. The broker is the real one on 127.0.0.1:5672 (CI starts it; so does
``rabbitmq-server -detached``)."""

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


def connect() -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(pika.URLParameters(URL))
    except pika.exceptions.AMQPConnectionError as exc:
        raise RuntimeError(f"RabbitMQ must answer at {URL} for these tests (start it with "
                           f"`rabbitmq-server -detached`): {exc!r}") from exc


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def message_count(queue: str) -> int | None:
    """Ready messages in ``queue`` by a passive declare; None when the queue does not exist."""
    connection = connect()
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return None
        raise
    finally:
        connection.close()


def delete_queues(*queues: str) -> None:
    connection = connect()
    try:
        for queue in queues:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.close()
    finally:
        connection.close()


def publish(queue: str, bodies: list[bytes | str], message_ids: bool = True) -> None:
    connection = connect()
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


def dead_letters(queue: str) -> list[tuple[bytes, str]]:
    """(body, reason header) of each message in ``<queue>.dead``, left in place."""
    connection = connect()
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
