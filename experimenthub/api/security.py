"""What keeps web pages, other hosts and oversized bodies away from the live kernel.

Three pure ASGI middlewares, outside every route:

* :class:`Guard` - the token, the ``Host`` allow-list and the cross-site check. A browser can be
  made to send requests to ``127.0.0.1`` by any page the user visits: a "simple" cross-site POST
  (no preflight) or, through DNS rebinding, a same-origin looking request under the attacker's host
  name. Programs (the seed's client, curl, requests) send neither ``Origin`` nor ``Sec-Fetch-Site``
  and use a loopback ``Host``, so they pass unchanged. A request carrying the hub's token in a
  header passes too: browsers cannot add headers to cross-site requests without a CORS preflight,
  which this API only answers for ``allowed_origins``.
  Behind a Jupyter server (``jupyter-server-proxy``, ``<server>/proxy/<port>/``) requests arrive
  with the server's ``Host`` (a public name under JupyterHub or Binder) and, from programs, the
  Jupyter token in ``Authorization: token <T>``; that token is accepted like the hub's own.
* :class:`ProxyPrefix` - the ASGI ``root_path`` from the proxy's prefix, so that ``/docs`` loads
  ``<prefix>/openapi.json`` through the proxy. It changes links only, never who gets in.
* :class:`BodyLimit` - refuses bodies above ``max_body_bytes`` with 413, by ``Content-Length``
  before reading anything, and by counting the chunks of a chunked body as they arrive.

Every refusal is JSON with a ``detail`` that says what to do.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Collection, Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: the header for deployments where ``Authorization`` belongs to a server in front (Jupyter)
TOKEN_HEADER = "X-ExperimentHub-Token"
#: query parameters never read as credentials (they end up in logs, history and Referer headers)
_QUERY_CREDENTIALS = frozenset({"token", "access_token", "api_token", "api_key"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: the ``Authorization`` schemes read: OAuth's, and Jupyter's (``token``), which programs going
#: through a Jupyter server send anyway
_AUTH_SCHEMES = frozenset({"bearer", "token"})


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.x.x.x`` or ``::1`` (brackets and a trailing dot allowed)."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.removesuffix(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, str | None]:
    """A ``Host`` header as (host name in lower case, without brackets, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1:]
        return value[1:end], (rest[1:] if rest.startswith(":") else None)
    if value.count(":") == 1:
        name, _, port = value.partition(":")
        return name, port
    return value, None


def _origin_key(scheme: str, host: str, port: str | int | None) -> tuple[str, str, int] | None:
    scheme = scheme.lower()
    if port is None or port == "":
        number = _DEFAULT_PORTS.get(scheme)
    elif isinstance(port, int):
        number = port
    else:
        number = int(port) if port.isdigit() else None
    if number is None:
        return None
    return scheme, host.lower().removesuffix("."), number


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """An ``Origin`` (``scheme://host[:port]``) as a comparable key; None for ``null`` or junk."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return _origin_key(parts.scheme, parts.hostname, port)


class Guard:
    """Token, ``Host`` and cross-site checks in front of the app (see the module docstring).

    ``token``: required on every path but ``open_paths`` (the docs and the schema), in the
    ``Authorization: Bearer`` header or in ``X-ExperimentHub-Token``; never in the query string.

    ``jupyter_token``: the token of the Jupyter server this kernel runs under (found by
    :mod:`experimenthub.api.jupyter`), accepted wherever the hub's token is and exactly like it, so
    that a program going through ``<server>/proxy/<port>/`` with ``Authorization: token <T>`` gets
    in under the server's (maybe public) Host. It grants nothing new: whoever holds it can already
    run any code in this kernel through the Jupyter server. It does not make a token required.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: Iterable[str] = (),
                 allowed_origins: Iterable[str] = (), open_paths: Collection[str] = (),
                 jupyter_token: str | None = None) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self._jupyter_token = jupyter_token.encode() if jupyter_token else None
        self._credentials = tuple(t for t in (self._token, self._jupyter_token) if t is not None)
        self._hosts = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self._origins = {key for key in map(parse_origin, allowed_origins) if key is not None}
        self._open_paths = frozenset(p for p in open_paths if p)

    def __repr__(self) -> str:
        return (f"<Guard token={'***' if self._token else None} "
                f"jupyter_token={'***' if self._jupyter_token else None} allowed_hosts={sorted(self._hosts)}>")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, detail = refusal
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        headers = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await send_json(send, status, {"detail": detail}, headers)

    # -- the checks ----------------------------------------------------------------------------
    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, detail) when the request must be refused, else None."""
        headers = Headers(scope=scope)
        query = urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if any(key.lower() in _QUERY_CREDENTIALS for key, _ in query):
            return 401, (f"Tokens are not accepted in the URL (it is written to logs and browser history): send "
                         f"'Authorization: Bearer <token>' or '{TOKEN_HEADER}: <token>' and drop '?token=' "
                         f"from the URL")
        if self._credentials and self._authenticated(headers):
            return None  # a header a browser cannot add cross-site: a program that knows the token
        # the path the routes see (under a proxy's root_path, see ProxyPrefix), so /docs stays /docs
        path = route_path(scope)
        open_path = path in self._open_paths and scope.get("method", "GET") in _SAFE_METHODS
        if self._token is not None and not open_path:
            jupyter = (" Through the Jupyter server's /proxy/<port>/, its own token works too: "
                       "'Authorization: token <Jupyter token>'." if self._jupyter_token is not None else "")
            return 401, (f"Missing or wrong token: send 'Authorization: Bearer <token>' (or '{TOKEN_HEADER}: "
                         f"<token>' where Authorization belongs to a server in front); the token is the one the "
                         f"server was given (EXPERIMENTHUB_TOKEN, EXPERIMENTHUB_TOKEN_FILE, --token-file).{jupyter}")
        # with a token the docs are public like any API's docs (nothing in them is secret); without one a
        # foreign Host cannot be told apart from DNS rebinding, so every path is refused under it
        if not (open_path and self._token is not None):
            host = headers.get("host")
            if host is not None and not self._host_allowed(host):
                return 403, self._host_detail(host, scope)
        method = scope.get("method", "GET")
        if scope["type"] == "http" and method not in _SAFE_METHODS:
            return self._cross_site(headers, scope, method)
        return None

    def _authenticated(self, headers: Headers) -> bool:
        given: list[str] = []
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() in _AUTH_SCHEMES:
            given.append(credentials.strip())
        given.extend(value.strip() for value in headers.getlist(TOKEN_HEADER.lower()))
        ok = False
        for candidate in given:  # each compared in constant time; no early exit on the first match
            encoded = candidate.encode("utf-8", "surrogateescape")
            for credential in self._credentials:
                ok |= hmac.compare_digest(encoded, credential)
        return ok

    def _host_allowed(self, host: str) -> bool:
        name, port = split_host(host)
        if port is not None and not port.isdigit():
            return False
        if is_loopback(name):
            return True
        if not self._hosts:
            return False
        full = host.strip().lower()
        for allowed in self._hosts:
            if allowed == "*" or allowed in (name, full):
                return True
            if allowed.startswith("*.") and name.endswith(allowed[1:]):
                return True
        return False

    def _host_detail(self, host: str, scope: Scope) -> str:
        port = _server_port(scope)
        token = "send the token" if self._token is not None else (
            "serve with a token (EXPERIMENTHUB_TOKEN or EXPERIMENTHUB_TOKEN_FILE) and send it")
        if self._jupyter_token is not None:
            token += " (through the Jupyter server's /proxy/<port>/, its token: 'Authorization: token <T>')"
        return (f"Host {host!r} is not a loopback name, and without the token a foreign host name cannot be told "
                f"apart from DNS rebinding by a web page. Open the API through http://127.0.0.1:{port}, or add "
                f"the host to EXPERIMENTHUB_ALLOWED_HOSTS, or {token} ('Authorization: Bearer <token>' or "
                f"'{TOKEN_HEADER}: <token>')")

    def _cross_site(self, headers: Headers, scope: Scope, method: str) -> tuple[int, str] | None:
        origin = headers.get("origin")
        site = (headers.get("sec-fetch-site") or "").lower()
        if origin is None and site not in ("cross-site", "same-site"):
            return None  # a program, or the browser says the page is our own
        if origin is not None:
            key = parse_origin(origin)
            own = _own_origin(scope, headers)
            if key is not None and (key == own or key in self._origins):
                return None
        shown = origin if origin is not None else f"a {site} page"
        token = (f"send the token in the '{TOKEN_HEADER}' header" if self._token is not None else
                 f"serve with a token (EXPERIMENTHUB_TOKEN) and send it in the '{TOKEN_HEADER}' header")
        own_text = _origin_text(_own_origin(scope, headers)) or f"http://127.0.0.1:{_server_port(scope)}"
        return 403, (f"Cross-site {method} refused: it comes from {shown}, not from this API's own origin "
                     f"{own_text}, so a web page may be acting on the kernel without the user knowing. "
                     f"Send it from a program (no Origin header), or from the docs page at {own_text}/docs, or "
                     f"add the page's origin to EXPERIMENTHUB_ALLOWED_ORIGINS, or {token}")


def _server_port(scope: Scope) -> int | str:
    server = scope.get("server")
    return server[1] if server and len(server) > 1 and server[1] else "PORT"


def _own_origin(scope: Scope, headers: Headers) -> tuple[str, str, int] | None:
    host = headers.get("host")
    if host is None:
        return None
    name, port = split_host(host)
    scheme = str(scope.get("scheme", "http"))
    return _origin_key({"ws": "http", "wss": "https"}.get(scheme, scheme), name, port)


def _origin_text(key: tuple[str, str, int] | None) -> str | None:
    if key is None:
        return None
    scheme, host, port = key
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if _DEFAULT_PORTS.get(scheme) == port else f"{scheme}://{host}:{port}"


# -- behind jupyter-server-proxy ---------------------------------------------------------------------
#: ``<base>/proxy/<port>`` or ``<base>/proxy/absolute/<port>``; ``<base>`` is the Jupyter server's
#: base_url (``/user/<name>`` under JupyterHub). Only URL-safe characters: the prefix is written into
#: the docs page's HTML and script, so no quotes, angle brackets, backslashes or spaces get there.
_SEGMENT = r"/[A-Za-z0-9._~%@+,;=:!$*-]+"
_PREFIX = re.compile(rf"((?:{_SEGMENT})*)/proxy/(absolute/)?(\d{{1,5}})")
_PREFIX_HEADERS = ("x-forwarded-prefix", "x-proxycontextpath")


def proxy_prefix(scope: Scope) -> str | None:
    """The prefix the proxy serves us under, for ``root_path``; None for a direct request.

    ``/proxy/<port>/x`` reaches us as ``/x`` with the prefix in ``X-Forwarded-Prefix`` and
    ``X-ProxyContextPath``; ``/proxy/absolute/<port>/x`` reaches us whole, without those headers.
    Either way ``<port>`` must be the one this server listens on."""
    server = scope.get("server")
    port = server[1] if server and len(server) > 1 else None
    headers = Headers(scope=scope)
    for name in _PREFIX_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        match = _PREFIX.fullmatch(value.strip().rstrip("/"))
        if match and int(match[3]) == port:
            return match[0]
        return None  # the first header present decides: a malformed one is ignored, not worked around
    path = scope.get("path", "")
    match = _PREFIX.match(path)
    if match and match[2] and int(match[3]) == port and path[match.end():][:1] in ("", "/"):
        return match[0]
    return None


def route_path(scope: Scope) -> str:
    """The path the routes match: ``path`` without ``root_path`` when it starts with it (as Starlette's
    router does; under the proxy's absolute mode the path still carries the prefix)."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):][:1] in ("", "/"):
        return path[len(root):] or "/"
    return path


class ProxyPrefix:
    """Sets ``root_path`` to :func:`proxy_prefix`, so that ``/docs`` through ``<server>/proxy/<port>/``
    loads ``<prefix>/openapi.json`` (which lists ``<prefix>`` as its server, for "Try it out").

    Why trusting the headers is harmless: anyone can send them (a program; a web page only to its own
    origin, i.e. under DNS rebinding), but the prefix only changes links in the docs page and the
    schema's ``servers``, in the answer to that very request; it is never stored, routes match the
    same paths with or without it, and the :class:`Guard` (inside this middleware) decides access
    from the token, ``Host`` and ``Origin`` alone. A header never lets a request in. A ``root_path``
    the server was configured with (``uvicorn --root-path``) is left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            prefix = proxy_prefix(scope)
            if prefix:
                scope = {**scope, "root_path": prefix}
        await self.app(scope, receive, send)


# -- request bodies ----------------------------------------------------------------------------------
class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; the 413 is already sent. An
    HTTPException so that FastAPI's body reading passes it on instead of calling it a parse error."""


def too_large_detail(limit: int) -> str:
    return (f"Request body too large: the limit is {limit} bytes ({limit / 2**20:.1f} MiB). Send less (e.g. the "
            f"rows in several requests, or through a queue), or raise the limit with EXPERIMENTHUB_MAX_BODY_BYTES")


class BodyLimit:
    """413 for a body above ``limit`` bytes, before it is read whole."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.limit:
            await send_json(send, 413, {"detail": too_large_detail(self.limit)}, [(b"connection", b"close")])
            return
        received = 0
        answered = False

        async def counted() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if not answered and not started:
                        answered = True
                        await send_json(send, 413, {"detail": too_large_detail(self.limit)},
                                        [(b"connection", b"close")])
                    raise _BodyTooLarge(413, too_large_detail(self.limit))
            return message

        started = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's own answer to the error (a 400, a 500): the client has its 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not answered:
                raise


async def send_json(send: Send, status: int, body: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})
