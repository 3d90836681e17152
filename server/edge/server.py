"""The HTTP server in front of the application: every request is screened
(server/edge/screen.py) from its headers, before a handler runs and before a
byte of its body is read; connections are bounded.

* A refused request is answered here with the documented JSON error and the
  connection is closed, so an unwanted 100 MiB body is never read.
* Open connections are capped. At the cap, the connection that has waited
  longest for its request headers (slowloris, or an idle keep-alive) is
  closed to make room; if every connection is busy, the newcomer gets 503.
  Headers must arrive within ``idle_connection_timeout``.
* ``accept()`` failing at the file-descriptor limit backs off (server/edge/accept.py).
* Forwarded headers (``X-Forwarded-For``/``-Proto``, ``X-Real-IP``) count only
  from the ``--trusted-proxy`` addresses; anyone else's are ignored.
"""

from __future__ import annotations

import logging
import resource
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import tornado.web
from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, StreamClosedError

from .. import tornado_adapter
from ..wire.errors import error_json
from . import accept
from .access import AccessPolicy
from .policy import HostPolicy, OriginPolicy, RateLimiter
from .redaction import log_refusal
from .screen import Request, Screen

__all__ = [
    "Edge",
    "EdgeHTTPServer",
    "make_server",
    "machine_names",
    "default_max_connections",
]

log = logging.getLogger("twinstream.edge")

#: The set of open connections is pruned of closed ones when it reaches twice
#: its last pruned size, and not below this.
PRUNE_AT_LEAST = 1024


def machine_names() -> list[str]:
    """This machine's host names and addresses (the default Host allow-list
    when listening on every interface)."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            for info in socket.getaddrinfo(name, None):
                names.add(str(info[4][0]))
        except OSError:
            pass
    return sorted(n for n in names if n)


def default_max_connections(reserve: int = 64) -> int:
    """The open-file limit less ``reserve`` descriptors for everything else
    (listening sockets, backend connections, files)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(16, soft - reserve)


@dataclass
class Edge(Screen):
    """The screen (server/edge/screen.py) and what the server around it
    needs: the trusted proxies and the metrics."""

    trusted_proxies: frozenset[str] = frozenset()
    metrics: Any = None

    @classmethod
    def from_settings(cls, settings: Any, metrics: Any = None) -> Edge:
        return cls(
            access=AccessPolicy.from_settings(
                settings.api_key, settings.api_keys_file, settings.token_ttl
            ),
            hosts=HostPolicy.build(
                settings.host,
                settings.allowed_hosts,
                machine_names() if settings.host in ("", "0.0.0.0", "::") else (),
            ),
            origins=OriginPolicy(tuple(settings.allowed_origins)),
            limiter=RateLimiter(settings.streams_per_minute),
            max_body_bytes=settings.limits.body_bytes,
            trusted_proxies=frozenset(settings.trusted_proxies),
            public_metrics=settings.public_metrics,
            chat_path=settings.chat_path,
            metrics=metrics,
        )

    def log_summary(self) -> None:
        """One startup line on who may connect (never a key)."""
        hosts = "any" if "*" in self.hosts.names else ", ".join(sorted(self.hosts.names))
        log.info(
            "access: %s; Host allow-list: %s; trusted proxies: %s; CORS origins: %s",
            f"API key required ({len(self.access.keys)} key(s))"
            if self.access.enabled
            else "open (no API key set: anyone who reaches this port may use it)",
            hosts,
            ", ".join(sorted(self.trusted_proxies)) or "none",
            ", ".join(self.origins.allowed) or "none (CORS off)",
        )

    def untrusted_forwarding(self, context: Any) -> bool:
        address = getattr(context, "address", None)
        peer = address[0] if isinstance(address, tuple) and address else None
        return peer not in self.trusted_proxies


def _response(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


# --- the server -------------------------------------------------------------------


class _CorsConnection:
    """The request's HTTP connection, adding CORS headers to the response."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.extra_headers: Sequence[tuple[str, str]] = ()

    def write_headers(
        self, start_line: Any, headers: httputil.HTTPHeaders, chunk: bytes | None = None
    ) -> Awaitable[None]:
        for name, value in self.extra_headers:
            if name not in headers:
                headers[name] = value
        result: Awaitable[None] = self._connection.write_headers(start_line, headers, chunk)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class _EdgeDelegate(httputil.HTTPMessageDelegate):
    """Screens one request; passes it on to the application or answers it."""

    def __init__(
        self,
        server: EdgeHTTPServer,
        server_conn: Any,
        request_conn: Any,
        inner: httputil.HTTPMessageDelegate,
        cors_conn: _CorsConnection | None,
    ) -> None:
        self.server = server
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.inner = inner
        self.cors_conn = cors_conn
        self.bad_header: str | None = None
        self.refused = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        self.server._idle.pop(self.server_conn, None)
        tornado_adapter.unwrap_header_parser(self.request_conn)
        edge = self.server.edge
        context = self.request_conn.context
        assert isinstance(start_line, httputil.RequestStartLine)
        if self.server.xheaders and edge.untrusted_forwarding(context):
            # Tornado applied X-Forwarded-* already; only trusted proxies may.
            tornado_adapter.unapply_xheaders(context)
        refusal, cors = edge.screen(
            Request.parse(
                start_line.method,
                start_line.path,
                headers,
                getattr(context, "protocol", "http"),
                getattr(context, "remote_ip", ""),
                malformed=self.bad_header is not None,
            )
        )
        if refusal is None:
            if self.cors_conn is not None:
                self.cors_conn.extra_headers = cors
            return self.inner.headers_received(start_line, headers)
        self.refused = True
        if refusal.code and edge.metrics is not None:
            edge.metrics.error(refusal.code)
        body = b""
        headers_out = [*refusal.headers, *cors]
        if refusal.status != 204:  # a preflight answer has no body
            body = error_json(refusal.status, refusal.code, refusal.message)
            headers_out.append(("Content-Type", "application/json; charset=utf-8"))
        log_refusal(
            refusal.status, start_line.method, start_line.path, getattr(context, "remote_ip", "?")
        )
        stream = self.request_conn.detach()  # Tornado reads nothing more (no body)
        return _answer_and_close(stream, _response(refusal.status, headers_out, body))

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()


async def _answer_and_close(stream: IOStream, data: bytes) -> None:
    try:
        await stream.write(data)
    except StreamClosedError:
        pass
    finally:
        stream.close()


class EdgeHTTPServer(HTTPServer):
    """``HTTPServer`` with the edge: screening, a connection cap with eviction
    of header-waiting connections, and an accept loop safe at EMFILE."""

    def initialize(  # type: ignore[override]
        self,
        request_callback: Any,
        edge: Edge | None = None,
        max_connections: int | None = None,
        accept_backoff: float = 0.5,
        **kwargs: Any,
    ) -> None:
        self.edge = edge or Edge()
        self.max_connections = max_connections or default_max_connections()
        self.accept_backoff = accept_backoff
        self._open: set[IOStream] = set()
        self._prune_at = PRUNE_AT_LEAST
        # server connections waiting for request headers, oldest first
        self._idle: dict[Any, None] = {}
        if self.edge.trusted_proxies:
            kwargs.setdefault("xheaders", True)
            kwargs.setdefault("trusted_downstream", sorted(self.edge.trusted_proxies))
        kwargs.setdefault("max_body_size", self.edge.max_body_bytes)
        super().initialize(request_callback, **kwargs)
        self._trusted_downstream = frozenset(self.trusted_downstream or ())
        if self.edge.metrics is not None:  # counted when scraped (WebSockets close unseen)
            self.edge.metrics.tcp_connections.set_function(self.open_connections)

    def open_connections(self) -> int:
        return sum(1 for stream in self._open if not stream.closed())

    # accepting

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        metrics = self.edge.metrics
        for sock in sockets:
            remove_handler = accept.add_accept_handler(
                sock,
                self._handle_connection,
                backoff=self.accept_backoff,
                on_refused=(
                    (lambda n: metrics.refused_connections.labels("fd_limit").inc(n))
                    if metrics is not None
                    else None
                ),
            )
            tornado_adapter.add_listening_socket(self, sock, remove_handler)

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        if len(self._open) >= self.max_connections:
            self._open = {s for s in self._open if not s.closed()}
        if len(self._open) >= self.max_connections and not self._evict_idle():
            if self.edge.metrics is not None:
                self.edge.metrics.refused_connection("connection_cap")
            stream.write(accept.REFUSAL).add_done_callback(lambda _: stream.close())
            return
        self._open.add(stream)
        if len(self._open) >= self._prune_at:
            # A WebSocket's HTTP connection is detached, so on_close never sees
            # its stream close: closed streams leave the set here instead. The
            # set at most doubles between prunes, so this is O(1) per accept
            # amortised, and it never holds more closed streams than open ones
            # (or PRUNE_AT_LEAST).
            self._open = {s for s in self._open if not s.closed()}
            self._prune_at = max(PRUNE_AT_LEAST, 2 * len(self._open))
        super().handle_stream(stream, address)

    def _evict_idle(self) -> bool:
        """Close the connection that has waited longest for request headers."""
        while self._idle:
            server_conn = next(iter(self._idle))
            del self._idle[server_conn]
            stream = getattr(server_conn, "stream", None)
            if stream is not None and not stream.closed():
                stream.close()
                self._open.discard(stream)
                if self.edge.metrics is not None:
                    self.edge.metrics.refused_connection("evicted_idle")
                return True
        return False

    # per request

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        self._idle.pop(server_conn, None)
        self._idle[server_conn] = None  # waiting for headers: newest at the end
        cors_conn = _CorsConnection(request_conn) if self.edge.origins.cors else None
        delegate_holder: list[_EdgeDelegate] = []
        _catch_bad_headers(request_conn, delegate_holder)
        context = getattr(request_conn, "context", None)
        tornado_adapter.share_trusted_downstream(context, self._trusted_downstream)
        app = self.request_callback
        assert isinstance(app, httputil.HTTPServerConnectionDelegate)
        inner = app.start_request(server_conn, cors_conn or request_conn)  # type: ignore[arg-type]
        delegate = _EdgeDelegate(self, server_conn, request_conn, inner, cors_conn)
        delegate_holder.append(delegate)
        if self.xheaders:
            return tornado_adapter.proxy_adapter(delegate, request_conn)
        return delegate

    def on_close(self, server_conn: object) -> None:
        self._idle.pop(server_conn, None)
        stream = getattr(server_conn, "stream", None)
        if stream is not None and stream.closed():
            self._open.discard(stream)
        super().on_close(server_conn)


def _catch_bad_headers(request_conn: Any, holder: list[_EdgeDelegate]) -> None:
    """Turn Tornado's bare ``400`` for a malformed header (e.g. a control
    character) into the documented JSON one: the parse error is noted and the
    request goes on with no headers, to be refused in headers_received."""

    def wrap(
        original: Callable[[bytes], tuple[str, httputil.HTTPHeaders]],
    ) -> Callable[[bytes], tuple[str, httputil.HTTPHeaders]]:
        def parse(data: bytes) -> tuple[str, httputil.HTTPHeaders]:
            try:
                return original(data)
            except httputil.HTTPInputError as exc:
                text = data.decode("latin1").lstrip("\r\n")
                start_line = text[: text.find("\n")].rstrip("\r") if "\n" in text else text
                if holder:
                    holder[0].bad_header = str(exc)
                return start_line, httputil.HTTPHeaders()

        return parse

    tornado_adapter.wrap_header_parser(request_conn, wrap)


def make_server(app: tornado.web.Application, options: dict[str, Any]) -> EdgeHTTPServer:
    """The server for ``app`` (made by ``make_app``, which holds the edge)
    with ``http_server_options(settings)``; call ``listen`` or ``add_sockets``."""
    settings = app.settings["twinstream_settings"]
    return EdgeHTTPServer(
        app,
        edge=app.settings["edge"],
        max_connections=settings.max_connections or None,
        **options,
    )
