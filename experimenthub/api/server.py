"""Serving the REST API from a background thread of the current process (a Jupyter kernel).

The kernel's main thread already runs an asyncio loop, so ``uvicorn.run()`` cannot be used there.
Instead ``uvicorn.Server.run`` runs in a daemon thread with its own loop (uvicorn skips signal
handlers off the main thread). We bind the socket ourselves and hand it to uvicorn: a port taken
by another process is an immediate :class:`PortInUse`, never a thread that dies in ``sys.exit``.
A process-wide registry keeps one server per hub and per port, so re-running a cell returns the
running server (same hub) or replaces it (a new hub object on the same port).

In a kernel of a Jupyter server with ``jupyter-server-proxy`` the API is also reachable, without
opening a port to anyone, at ``<server>/proxy/<port>/`` (:attr:`RunningServer.proxy_url`), behind
the Jupyter server's authentication; the Jupyter token is then accepted like the hub's own.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import socket
import threading
import time
from html import escape
from typing import TYPE_CHECKING, Any

from ..errors import ExperimentHubError
from .jupyter import JupyterServer, find_server
from .security import is_loopback

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger(__name__)

_START_TIMEOUT = 15.0
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class PortInUse(ExperimentHubError, OSError):
    """The requested port is taken by another process (or not bindable)."""


class ServerFailed(ExperimentHubError, RuntimeError):
    """The server thread did not start accepting connections."""


class InsecureBinding(ExperimentHubError, PermissionError):
    """Serving beyond loopback without a token was refused; the message says how to proceed."""


def check_binding(host: str, token: str | None, allow_unauthenticated: bool) -> str | None:
    """Raise :class:`InsecureBinding` for a non-loopback ``host`` without a token, unless allowed;
    then return the warning to give (once, by the caller). None: nothing to say."""
    if token or is_loopback(host):
        return None
    shown = host or "every interface"
    if not allow_unauthenticated:
        raise InsecureBinding(
            f"Refusing to serve the REST API on {shown} without a token: anyone who can reach this machine "
            f"could create, delete and load experiments and read their data. Set a token (hub.serve(token=...), "
            f"EXPERIMENTHUB_TOKEN or EXPERIMENTHUB_TOKEN_FILE; experimenthub serve --token-file FILE), or bind to "
            f"127.0.0.1, or, on a network you trust, allow it explicitly: hub.serve(allow_unauthenticated=True), "
            f"experimenthub serve --allow-unauthenticated, or EXPERIMENTHUB_ALLOW_UNAUTHENTICATED=true")
    return (f"the REST API on {shown} has no token (allow_unauthenticated): only requests under a loopback "
            f"Host name or one of EXPERIMENTHUB_ALLOWED_HOSTS are answered, and from there anyone on the network "
            f"can create, delete and load experiments and read their data")


@dataclasses.dataclass
class RunningServer:
    hub: Hub = dataclasses.field(repr=False)
    host: str
    port: int
    token: str | None = dataclasses.field(repr=False)  # never shown: see __repr__
    _server: Any = dataclasses.field(repr=False)
    _thread: threading.Thread = dataclasses.field(repr=False)
    _socket: socket.socket = dataclasses.field(repr=False)
    #: the Jupyter server this kernel runs under, found at start (None: not under one)
    jupyter: JupyterServer | None = dataclasses.field(default=None, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def proxy_url(self) -> str | None:
        """``<Jupyter server>/proxy/<port>/`` when this kernel runs under a Jupyter server (whose
        ``jupyter-server-proxy`` forwards it here, behind the server's login), else None. The
        server's address as it reports it: under JupyterHub an internal one, see :attr:`proxy_path`."""
        return self.jupyter.proxy_url(self.port) if self.jupyter is not None else None

    @property
    def proxy_path(self) -> str | None:
        """``<base_url>proxy/<port>/``: the same, relative to the Jupyter page's own origin (what a
        link in a notebook's output should use: it works under a public JupyterHub or Binder name)."""
        return self.jupyter.proxy_path(self.port) if self.jupyter is not None else None

    @property
    def authenticated(self) -> bool:
        """Whether requests need the token."""
        return bool(self.token)

    def __repr__(self) -> str:
        proxy = f", proxy_url={self.proxy_url!r}" if self.proxy_url else ""
        return (f"RunningServer(url={self.url!r}{proxy}, authenticated={self.authenticated}, "
                f"running={self.running})")

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and bool(self._server.started) and not self._server.should_exit

    def stop(self, timeout: float = 2.0) -> None:
        _stop(self, timeout)

    def shut_down(self, timeout: float) -> None:
        """Ask uvicorn to exit, wait for its thread, and free the port (the registry is _stop's)."""
        self._server.should_exit = True
        self._thread.join(timeout)
        try:
            self._socket.close()
        except OSError:
            pass

    def _repr_html_(self) -> str:
        direct = f'ExperimentHub API at <a href="{escape(self.url)}/docs" target="_blank">{escape(self.url)}</a>'
        if self.proxy_url is None or self.proxy_path is None:
            return direct
        # the link relative to the notebook page's origin, which is the public one under JupyterHub
        return (f'{direct}, through the Jupyter server at <a href="{escape(self.proxy_path)}docs" '
                f'target="_blank">{escape(self.proxy_url)}</a>')


_lock = threading.Lock()
_by_port: dict[tuple[str, int], RunningServer] = {}


def under_voila() -> bool:
    """Voila starts a kernel per visitor: a fixed port would collide for the second visitor."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("voila/")


def running(hub: Hub) -> RunningServer | None:
    with _lock:
        for server in _by_port.values():
            if server.hub is hub and server.running:
                return server
    return None


def serve(hub: Hub, host: str | None = None, port: int | None = None, token: str | None = None,
          allow_unauthenticated: bool | None = None) -> RunningServer:
    """Serve ``hub`` from a daemon thread (see the module docstring). ``token`` defaults to the
    hub's ``api_token`` setting; a non-loopback ``host`` without one raises :class:`InsecureBinding`
    unless ``allow_unauthenticated`` (default: the setting), which then warns once."""
    host = host or hub.settings.server_host
    token = token or hub.settings.api_token
    if allow_unauthenticated is None:
        allow_unauthenticated = hub.settings.allow_unauthenticated
    warning = check_binding(host, token, allow_unauthenticated)
    with _lock:
        current = [s for s in _by_port.values() if s.hub is hub and s.running]
        for server in current:
            if port in (None, 0, server.port) and host == server.host and token == server.token:
                return server  # re-running the cell: the same hub is already served
    if port is None:
        port = 0 if under_voila() else hub.settings.server_port
    with _lock:
        replaced = [s for s in _by_port.values() if port and s.port == port and s.host == host]
        stale = current + [s for s in replaced if s not in current]
    for server in stale:  # a new hub object (or new options) for the same place: the old server goes
        _stop(server, timeout=2.0)
    sock = _bind(host, port)
    try:
        server = _start(hub, sock, host, token)
    except BaseException:
        sock.close()
        raise
    if warning:  # once per server started, not per re-run of the cell that returns it
        log.warning("%s", warning)
    if server.proxy_url:
        log.info("ExperimentHub API at %s, and through the Jupyter server at %s (with its login or token)",
                 server.url, server.proxy_url)
    return server


def stop(hub: Hub, timeout: float = 2.0) -> bool:
    with _lock:
        mine = [s for s in _by_port.values() if s.hub is hub]
    for server in mine:
        _stop(server, timeout)
    return bool(mine)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says TCP; without it small responses wait ~40 ms on Nagle + delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT is free to reuse
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"Port {port} on {host} is already in use by another process; choose another "
                            f"port, or port=0 to let the system pick a free one") from exc
        raise PortInUse(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _start(hub: Hub, sock: socket.socket, host: str, token: str | None) -> RunningServer:
    import uvicorn

    from .app import create_app
    from .logs import uvicorn_log_config

    # never raises; None outside a Jupyter server's kernel. The proxy connects to localhost:<port>,
    # so a server bound to one other address only is out of its reach
    jupyter = find_server() if is_loopback(host) or host in _WILDCARDS else None
    app = create_app(hub, token=token, jupyter_token=jupyter.token if jupyter is not None else None)
    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            log_config=uvicorn_log_config(), lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"experimenthub-api-{port}")
    handle = RunningServer(hub=hub, host=host, port=port, token=token, _server=server, _thread=thread,
                           _socket=sock, jupyter=jupyter)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise ServerFailed(f"The API server thread for {host}:{port} exited while starting")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ServerFailed(f"The API server on {host}:{port} did not start within {_START_TIMEOUT} s")
        time.sleep(0.01)
    with _lock:
        _by_port[(host, port)] = handle
    return handle


def _stop(server: RunningServer, timeout: float) -> None:
    server.shut_down(timeout)
    with _lock:
        if _by_port.get((server.host, server.port)) is server:
            del _by_port[(server.host, server.port)]
