"""Routing on more than the path: one path, several handlers, chosen by the
method and by whether the request is a WebSocket handshake (``GET /v1/responses``
upgraded is WebSocket mode, ``POST /v1/responses`` the HTTP API; ``POST
/api/chat`` the SSE transport, ``GET /api/chat`` upgraded the WebSocket one);
and the answer to a request for a WebSocket path that is not a handshake."""

from __future__ import annotations

from typing import Any

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.routing import PathMatches

from ..edge.policy import allowed_methods
from ..edge.server import Edge
from ..metrics import Metrics
from ..wire import errors
from .base import JsonErrorHandler

__all__ = ["RequestMatches", "WebSocketRequiredHandler", "asks_for_websocket"]


def asks_for_websocket(headers: HTTPHeaders) -> bool:
    """``Upgrade: websocket`` and ``Connection: upgrade`` (RFC 6455 4.1), as
    Tornado's handshake checks them."""
    if headers.get("Upgrade", "").lower() != "websocket":
        return False
    tokens = headers.get("Connection", "").split(",")
    return "upgrade" in (token.strip().lower() for token in tokens)


class RequestMatches(PathMatches):
    """The path, for ``method`` only (any method when None), and with
    ``upgrade`` only for a WebSocket handshake."""

    def __init__(self, path: str, method: str | None = None, upgrade: bool = False) -> None:
        super().__init__(path)
        self.method = method
        self.upgrade = upgrade

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        if self.method is not None and request.method != self.method:
            return None
        if self.upgrade and not asks_for_websocket(request.headers):
            return None
        return super().match(request)


class WebSocketRequiredHandler(JsonErrorHandler):
    """A WebSocket path asked for without a handshake: a plain ``GET`` (a browser,
    curl) is ``400`` ``websocket_required``; another method no route took is ``405``
    with ``Allow``. Routed after the path's WebSocket (and HTTP) handlers."""

    def initialize(self, metrics: Metrics, edge: Edge) -> None:
        self.metrics = metrics
        self.edge = edge

    def _allowed(self) -> str:
        return allowed_methods(self.request.path, self.edge.chat_path)

    def get(self, *args: str) -> None:
        path = self.request.path
        also = f"; POST {path} is its HTTP transport" if "POST" in self._allowed() else ""
        raise errors.ProtocolError(
            "websocket_required",
            f"GET {path} is a WebSocket endpoint: connect with a WebSocket client "
            f"(Connection: Upgrade, Upgrade: websocket){also}",
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", self._allowed())  # RFC 9110 15.5.6
        super().write_error(status_code, **kwargs)
