"""The REST server's state and URL, with a start/stop toggle (``hub.serve()`` / ``hub.stop_server()``).

Under a Jupyter server (JupyterLab, JupyterHub, Binder) the API is also reachable through that
server's ``jupyter-server-proxy``: the URL line then links there too, relative to the page's own
origin (``server.proxy_path``: right under a public JupyterHub name), showing ``server.proxy_url``.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import ipywidgets as w

from .background import Runner
from .lifecycle import Quiet
from .style import attr, esc


def server_links(server: Any) -> str:
    """The server's URL as a link to its API docs (``a.eh-server-direct``), and when it runs under a
    Jupyter server, the proxied API beside it (``a.eh-server-proxy``)."""
    url = server.url
    value = (f'<a class="eh-server-direct" href="{attr(url)}/docs" target="_blank" title="API docs">'
             f"{esc(url)}</a>")
    path, proxied = getattr(server, "proxy_path", None), getattr(server, "proxy_url", None)
    if path:
        value += (f' <span class="eh-muted">· through Jupyter:</span> <a class="eh-server-proxy" '
                  f'href="{attr(path)}docs" target="_blank" title="API docs through the Jupyter server (its login '
                  f'applies)">{esc(proxied or path)}</a>')
    return value


class ServerControl(w.HBox):
    """``toggle`` (class ``eh-server-toggle``) starts/stops the server; ``url`` (``eh-server-url``)
    links to its API docs (and to them through the Jupyter server, when there is one). ``sync()``
    (from the panel's timer) follows servers started elsewhere."""

    def __init__(self, hub: Any, runner: Runner, port: int | None = None) -> None:
        self._hub, self._runner, self._port = hub, runner, port
        self._lock = threading.Lock()
        self._busy = False  # a start/stop is in flight: sync() leaves the toggle alone
        self._quiet = Quiet()  # the toggle is being set by code, not by the user
        self.toggle = w.ToggleButton(value=False, description="REST API: off", icon="server",
                                     tooltip="Start or stop the REST API server in this kernel",
                                     layout=w.Layout(width="150px"))
        self.toggle.add_class("eh-server-toggle")
        self.url = w.HTML(value='<span class="eh-muted">not serving</span>', layout=w.Layout(min_width="170px"))
        self.url.add_class("eh-server-url")
        self.toggle.observe(self._on_toggle, "value")
        super().__init__([self.toggle, self.url], layout=w.Layout(align_items="center"))
        self.add_class("eh-server")
        if "experimenthub.api.server" in sys.modules:  # else no server can run yet (and the web stack stays
            self.sync()  # unimported until the timer looks)

    @property
    def server_url(self) -> str | None:
        server = self._hub.server
        return server.url if server is not None else None

    def _on_toggle(self, change: dict) -> None:
        if self._quiet:
            return
        with self._lock:
            self._busy = True
        if change["new"]:
            self.toggle.description = "starting…"
            self._runner.run("server-start", lambda: self._hub.serve(port=self._port),
                             done=lambda server: self._finish(), failed=lambda exc: self._finish())
        else:
            self.toggle.description = "stopping…"
            self._runner.run("server-stop", self._hub.stop_server, done=lambda stopped: self._finish(),
                             failed=lambda exc: self._finish())

    def _finish(self) -> None:
        with self._lock:
            self._busy = False
        self.sync()

    def sync(self) -> None:
        """Show the server as it is (any thread)."""
        with self._lock:
            if self._busy:
                return
        server = self._hub.server
        running = server is not None and server.running
        self._set_toggle(running)
        self.toggle.description = "REST API: on" if running else "REST API: off"
        self.toggle.button_style = "success" if running else ""
        if running:
            value = server_links(server)
        else:
            value = '<span class="eh-muted">not serving</span>'
        if self.url.value != value:
            self.url.value = value

    def _set_toggle(self, value: bool) -> None:
        if self.toggle.value != value:
            with self._quiet:
                self.toggle.value = value
