"""The Jupyter server this kernel runs under, if any: where ``jupyter-server-proxy`` serves our API.

A kernel started by a Jupyter server (JupyterLab, Notebook 7, JupyterHub's single-user server,
Binder) has ``JPY_PARENT_PID`` = the server's pid in its environment, and inherits the server's
runtime directory, where the server wrote ``jpserver-<pid>.json`` (its URL, base_url and token).
``JPY_PARENT_PID`` is also set by other launchers (nbclient, jupyter console), so it only counts
when a running server's file says that pid. This reads the files the way
``jupyter_server.serverapp.list_running_servers`` does, without importing the server application
(seconds of imports in a kernel that never needs them) and without deleting other servers' files.

Through the proxy the API is at ``<server URL>proxy/<port>/``; the request reaching us then carries
the server's ``Host`` and, for programs, the Jupyter token (``Authorization: token <T>``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class JupyterServer:
    url: str  #: e.g. ``http://127.0.0.1:8888/`` (it includes the base_url)
    base_url: str  #: ``/``, or ``/user/<name>/`` under JupyterHub
    pid: int
    token: str | None = dataclasses.field(default=None, repr=False)  # a secret: never shown

    def proxy_path(self, port: int) -> str:
        """``<base_url>proxy/<port>/``: the proxied API on the server's own origin."""
        base = "/" + self.base_url.strip("/")
        return f"{base.rstrip('/')}/proxy/{port}/"

    def proxy_url(self, port: int) -> str:
        """``<server URL>proxy/<port>/``; the server's address as the server itself reports it (under
        JupyterHub an internal one: the browser's origin plus :meth:`proxy_path` is the public one)."""
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, self.proxy_path(port), "", ""))


def find_server(environ: Mapping[str, str] | None = None, runtime_dir: str | None = None) -> JupyterServer | None:
    """The Jupyter server that started this process (see the module docstring); None when there is
    none, or anything about it cannot be read. Never raises: serving works without it."""
    environ = os.environ if environ is None else environ
    try:
        ppid = int(environ.get("JPY_PARENT_PID", "") or 0)
    except ValueError:
        return None
    if ppid <= 0:
        return None
    try:
        if runtime_dir is None:
            from jupyter_core.paths import jupyter_runtime_dir

            runtime_dir = jupyter_runtime_dir()
        for info in _server_files(Path(runtime_dir)):
            if info.get("pid") == ppid:
                return _server(info)
    except Exception as exc:  # a missing jupyter_core, an unreadable directory: no proxy URL, no failure
        log.debug("no Jupyter server found for JPY_PARENT_PID=%s: %r", ppid, exc)
    return None


def _server_files(runtime_dir: Path) -> list[dict[str, object]]:
    infos = []
    for path in sorted(runtime_dir.glob("jpserver-*.json")) + sorted(runtime_dir.glob("nbserver-*.json")):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # removed meanwhile, or being written
            continue
        if isinstance(info, dict):
            infos.append(info)
    return infos


def _server(info: Mapping[str, object]) -> JupyterServer | None:
    url, base_url, pid, token = info.get("url"), info.get("base_url", "/"), info.get("pid"), info.get("token")
    if not isinstance(url, str) or not isinstance(base_url, str) or not isinstance(pid, int):
        return None
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return None  # a unix socket (http+unix): no URL a browser or requests can open
    return JupyterServer(url=url, base_url=base_url or "/", pid=pid,
                         token=token if isinstance(token, str) and token else None)
