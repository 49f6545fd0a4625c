"""``ExperimentHub``: the core :class:`~experimenthub.hub.Hub` plus its faces.

The faces are adapters over the core: the REST API (``serve`` / ``stop_server``, package
``experimenthub.api``) and the widget panel (``panel``, package ``experimenthub_widgets``). They are imported on
first use, so ``import experimenthub`` stays light and the core never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hub import Hub

if TYPE_CHECKING:
    from .api.server import RunningServer


class ExperimentHub(Hub):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from .api.paths import RESERVED_FIRST_SEGMENTS

        kwargs.setdefault("reserved_names", RESERVED_FIRST_SEGMENTS)  # the REST API's own first segments
        super().__init__(*args, **kwargs)

    def serve(self, host: str | None = None, port: int | None = None, token: str | None = None,
              allow_unauthenticated: bool | None = None) -> RunningServer:
        """Serve the REST API from a background thread of this process (a kernel, a script).

        Returns once the server accepts connections; ``.url`` says where, and in a kernel of a Jupyter
        server ``.proxy_url`` where ``jupyter-server-proxy`` serves it behind the Jupyter login (the
        Jupyter token is accepted there like the hub's own). Loopback by default;
        ``port=0`` picks a free port (the default under Voila, where every visitor gets a kernel).
        Calling it again returns the running server; a port taken by another process raises
        :class:`~experimenthub.api.server.PortInUse` at once.

        ``token`` (default: the setting, ``EXPERIMENTHUB_TOKEN`` / ``EXPERIMENTHUB_TOKEN_FILE``):
        requests then need ``Authorization: Bearer <token>`` or ``X-ExperimentHub-Token: <token>``,
        else 401; never ``?token=``. Without a token only loopback Host names (and
        ``allowed_hosts``) are answered, and state-changing requests from other web origins are
        refused (403). A ``host`` beyond loopback without a token raises
        :class:`~experimenthub.api.server.InsecureBinding`, unless ``allow_unauthenticated=True``
        (or the setting ``EXPERIMENTHUB_ALLOW_UNAUTHENTICATED``), which logs a warning instead.
        """
        from .api.server import serve

        server = serve(self, host=host, port=port, token=token, allow_unauthenticated=allow_unauthenticated)
        self.freeze_gc()  # the web stack just imported: keep it out of full collections too
        return server

    def stop_server(self, timeout: float = 2.0) -> bool:
        """Stop this hub's REST server (the port is free again on return). False if none ran."""
        from .api.server import stop

        return stop(self, timeout=timeout)

    @property
    def server(self) -> RunningServer | None:
        """The running REST server of this hub, if any."""
        from .api.server import running

        return running(self)

    def close(self, timeout: float = 60.0) -> None:
        """Stop the REST server first (it would answer against closed plugins), then the core."""
        self.stop_server()
        super().close(timeout)

    def panel(self, **options: Any) -> Any:
        """The ipywidgets control panel over this hub."""
        from experimenthub_widgets import panel

        return panel(self, **options)
