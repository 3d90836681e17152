"""The screen: what the edge decides about a request from its line and headers
alone, before a handler runs and before a byte of its body is read.

Pure code: no tornado, no asyncio, no I/O (server/edge/server.py builds the
:class:`Request` and answers a :class:`~server.edge.policy.Refusal`). The
screen is two ordered lists of named checks; the first refusal wins:

* :data:`GATES` refuse with no CORS headers: a malformed head, or a Host this
  server does not answer to (a DNS-rebinding page must learn nothing);
* :data:`CHECKS` refuse with the CORS headers of a listed origin, so a page
  allowed to call the API can read why it was refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from .access import TOKEN_QUERY_PARAM, AccessPolicy, is_public_path
from .policy import HostPolicy, OriginPolicy, RateLimiter, Refusal, allowed_methods, starts_stream

__all__ = [
    "Request",
    "Screen",
    "Check",
    "CorsHeaders",
    "GATES",
    "CHECKS",
    "well_formed",
    "host_allowed",
    "preflight",
    "origin_allowed",
    "no_cross_site_fetch",
    "body_size",
    "api_key",
    "start_rate",
]

CorsHeaders = tuple[tuple[str, str], ...]

_CORS_HEADERS = "Authorization, Content-Type, Last-Event-ID"


@dataclass(slots=True)
class Request:
    """What the screen sees of a request: its line, headers and connection."""

    method: str
    path: str
    query: str
    #: looked up case-insensitively by the server (Tornado's HTTPHeaders)
    headers: Mapping[str, str]
    scheme: str = "http"
    remote_ip: str = ""
    #: a header line could not be parsed (``headers`` is then empty)
    malformed: bool = False

    @classmethod
    def parse(
        cls,
        method: str,
        target: str,
        headers: Mapping[str, str],
        scheme: str = "http",
        remote_ip: str = "",
        malformed: bool = False,
    ) -> Request:
        """From the request line's method and target (``path?query``)."""
        path, _, query = target.partition("?")
        return cls(method, path, query, headers, scheme, remote_ip, malformed)


@dataclass
class Screen:
    """Everything the screen decides with, built once from the settings."""

    access: AccessPolicy = field(default_factory=AccessPolicy)
    hosts: HostPolicy = field(default_factory=lambda: HostPolicy(frozenset({"*"})))
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0))
    max_body_bytes: int = 256 * 1024
    public_metrics: bool = False
    #: where the AI SDK's chat transports are mounted (--chat-path)
    chat_path: str = "/api/chat"

    def screen(self, request: Request) -> tuple[Refusal | None, CorsHeaders]:
        """A refusal (or preflight answer) for this request, or None to let it
        through; plus CORS headers for the response either way."""
        for gate in GATES:
            refusal = gate(self, request)
            if refusal is not None:
                return refusal, ()
        cors = self.cors_headers(request)
        for check in CHECKS:
            refusal = check(self, request)
            if refusal is not None:
                return refusal, cors
        return None, cors

    def cors_headers(self, request: Request) -> CorsHeaders:
        """CORS headers for a response to a listed origin (none for any other)."""
        origin = request.headers.get("Origin")
        if origin is not None and self.origins.cors and self.origins.listed(origin):
            return (("Access-Control-Allow-Origin", origin), ("Vary", "Origin"))
        return ()

    def allow_start(self, remote_ip: str) -> Refusal | None:
        """For starts that are not requests (a WebSocket ``start`` message)."""
        wait = self.limiter.take(remote_ip) if self.limiter.enabled else 0.0
        return self.limiter.refusal(wait) if wait > 0 else None


Check = Callable[[Screen, Request], Refusal | None]


def well_formed(screen: Screen, request: Request) -> Refusal | None:
    """Tornado's bare 400 for a malformed header becomes the documented JSON one."""
    if request.malformed:
        return Refusal(
            400, "invalid_header", "a request header holds a control character or is malformed"
        )
    return None


def host_allowed(screen: Screen, request: Request) -> Refusal | None:
    """Host must be one this server answers to (DNS rebinding)."""
    return screen.hosts.check(request.headers.get("Host"))


def preflight(screen: Screen, request: Request) -> Refusal | None:
    """``OPTIONS``: the CORS preflight answer for a listed origin, else 405
    (RFC 9110 15.5.6: with ``Allow``)."""
    if request.method != "OPTIONS":
        return None
    path = request.path
    if screen.cors_headers(request) and request.headers.get("Access-Control-Request-Method"):
        return Refusal(
            204,
            "",
            "",
            (
                ("Access-Control-Allow-Methods", allowed_methods(path, screen.chat_path)),
                ("Access-Control-Allow-Headers", _CORS_HEADERS),
                ("Access-Control-Max-Age", "600"),
            ),
        )
    return Refusal(
        405,
        "method_not_allowed",
        f"{path[:100]} does not answer OPTIONS"
        + ("" if screen.origins.cors else " (CORS is off: no --allowed-origin)"),
        (("Allow", allowed_methods(path, screen.chat_path)),),
    )


def origin_allowed(screen: Screen, request: Request) -> Refusal | None:
    """A browser's Origin must be ours (scheme, host and port) or listed."""
    origin = request.headers.get("Origin")
    if (
        origin is not None
        and not is_public_path(request.path)
        and not screen.origins.allows(origin, request.scheme, request.headers.get("Host"))
    ):
        return Refusal(
            403,
            "origin_not_allowed",
            "requests from this page's origin are not allowed; the operator can add "
            "it with --allowed-origin",
        )
    return None


def no_cross_site_fetch(screen: Screen, request: Request) -> Refusal | None:
    """A browser request from another site that sends no Origin: an
    ``<img src=/sse?prompt=...>`` or a link. It would start (and pay for) a
    generation on the visitor's behalf (Fetch Metadata, ``Sec-Fetch-Site``)."""
    if (
        request.headers.get("Origin") is None
        and request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site")
        and not is_public_path(request.path)
        and "*" not in screen.origins.allowed
    ):
        return Refusal(
            403, "origin_not_allowed", "requests from another site's page are not allowed here"
        )
    return None


def body_size(screen: Screen, request: Request) -> Refusal | None:
    """``Content-Length`` over the limit is refused before the body is read."""
    length = request.headers.get("Content-Length")
    if length is None:
        return None
    size = _content_length(length)
    if size is None:
        return Refusal(400, "invalid_content_length", "Content-Length is invalid")
    if size > screen.max_body_bytes:
        return Refusal(
            413,
            "body_too_large",
            f"the body is {size} bytes; the limit is {screen.max_body_bytes} bytes",
        )
    return None


def api_key(screen: Screen, request: Request) -> Refusal | None:
    """A key or token, on every path but the public ones (RFC 6750 3: the
    401 names the Bearer scheme)."""
    path = request.path
    public = is_public_path(path) or (path == "/metrics" and screen.public_metrics)
    if public or screen.access.allows(
        request.headers.get("Authorization"), _query_values(request.query, TOKEN_QUERY_PARAM)
    ):
        return None
    return Refusal(
        401,
        "invalid_api_key",
        "missing or wrong API key: send 'Authorization: Bearer KEY', or a "
        "token from POST /auth/token as ?access_token=TOKEN",
        (("WWW-Authenticate", 'Bearer realm="twinstream"'),),
    )


def start_rate(screen: Screen, request: Request) -> Refusal | None:
    """Streams started per client address are rate limited (429 with Retry-After)."""
    if not screen.limiter.enabled or not starts_stream(
        request.method,
        request.path,
        request.query,
        request.headers.get("Last-Event-ID"),
        screen.chat_path,
    ):
        return None
    wait = screen.limiter.take(request.remote_ip)
    return screen.limiter.refusal(wait) if wait > 0 else None


#: Refused with no CORS headers, in this order.
GATES: tuple[Check, ...] = (well_formed, host_allowed)
#: Then, in this order, refused with the CORS headers of a listed origin.
CHECKS: tuple[Check, ...] = (
    preflight,
    origin_allowed,
    no_cross_site_fetch,
    body_size,
    api_key,
    start_rate,
)


def _content_length(value: str) -> int | None:
    # Repeated equal values are one length (RFC 9110 8.6); differing ones are invalid.
    pieces = {piece.strip() for piece in value.split(",")}
    if len(pieces) != 1:
        return None
    (text,) = pieces
    return int(text) if text.isdigit() and len(text) < 19 else None


def _query_values(query: str, name: str) -> list[str]:
    if name not in query:
        return []
    return [value for key, value in parse_qsl(query, keep_blank_values=True) if key == name]
