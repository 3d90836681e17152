"""Rules applied to a request before any handler sees it. Pure code: no
tornado, no asyncio, no I/O (server/edge/server.py applies them).

What is decided here, from the request line and headers alone:

* **Host** must be one this server answers to (DNS rebinding: a page on
  ``evil.example`` whose name resolves to 127.0.0.1 sends ``Host: evil.example``).
* **Origin**, when a browser sends one, must be this server's origin (scheme,
  host and port all compared) or one configured with ``--allowed-origin``.
  CORS headers and preflights exist only for configured origins.
* **Body size** is refused from ``Content-Length`` before a byte of it is read.
* **Streams started** per client address are rate limited (token bucket).

The order they are applied in is server/edge/screen.py; log lines are
redacted by server/edge/redaction.py.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "Refusal",
    "parse_host",
    "normalize_origin",
    "HostPolicy",
    "OriginPolicy",
    "RateLimiter",
    "allowed_methods",
    "starts_stream",
]

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_HOST_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII, nothing else
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "*")


@dataclass(frozen=True)
class Refusal:
    """An answer given at the edge: status, stable code, a sentence saying what to do."""

    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header -> (lower-case name without a trailing dot, port or
    None); None if malformed. IPv6 literals are bracketed (RFC 3986 3.2.2)."""
    value = value.strip()
    if not _HOST_CHARS.fullmatch(value):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_raw = value.rpartition(":")
        if not colon:
            name, port_text = value, None
        elif ":" in name:  # an unbracketed IPv6 literal is not a valid Host
            return None
        else:
            port_text = port_text_raw
    if port_text is not None:
        if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
            return None
    name = name.lower().rstrip(".")
    if not name or "/" in name or "@" in name:
        return None
    return name, int(port_text) if port_text else None


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> tuple[str, str, int] | None:
    """``scheme://host[:port]`` -> (scheme, host, port with defaults filled in);
    None for ``null``, paths, or anything else that is not a plain origin."""
    origin = origin.strip()
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme]


@dataclass(frozen=True)
class HostPolicy:
    """Host names this server answers to; ``*`` = any (rebinding unprotected)."""

    names: frozenset[str]

    @classmethod
    def build(cls, bound_host: str, extra: Iterable[str] = (), machine_names: Iterable[str] = ()):
        """The default list: the bound address and localhost; when bound to every
        interface, also ``machine_names`` (host name, its addresses); plus ``extra``."""
        names = set(LOCAL_NAMES)
        if bound_host in WILDCARD_ADDRESSES:
            names.update(machine_names)
        else:
            names.add(bound_host)
        for item in extra:
            parsed = parse_host(item) if item != "*" else ("*", None)
            if parsed is None:
                raise ValueError(f"--allowed-host: {item!r} is not a host name")
            names.add(parsed[0])
        return cls(frozenset(n.lower().strip("[]").rstrip(".") for n in names))

    def check(self, host_header: str | None) -> Refusal | None:
        if "*" in self.names:
            return None
        parsed = parse_host(host_header or "")
        if parsed is None:
            return Refusal(400, "invalid_host", "the Host header is missing or malformed")
        if parsed[0] not in self.names:
            return Refusal(
                421,
                "host_not_allowed",
                f"this server does not answer to the host name {parsed[0][:100]!r}; "
                "its operator can add it with --allowed-host",
            )
        return None


@dataclass(frozen=True)
class OriginPolicy:
    """Same-origin always; listed origins (``*`` = any) get CORS answers too."""

    allowed: tuple[str, ...] = ()

    @property
    def cors(self) -> bool:
        return bool(self.allowed)

    def allows(self, origin: str, scheme: str, host_header: str | None) -> bool:
        """Whether a request from a page at ``origin`` may use the API of a
        server reached as ``scheme://host_header``."""
        if host_header and origin == f"{scheme}://{host_header}":
            return True  # the common case, spelled exactly alike: no parsing
        if self.listed(origin):
            return True
        theirs = normalize_origin(origin)
        host = parse_host(host_header or "")
        if theirs is None or host is None:
            return False
        ours = (scheme.lower(), host[0], host[1] or _DEFAULT_PORTS.get(scheme.lower(), 0))
        return theirs == ours

    def listed(self, origin: str) -> bool:
        if "*" in self.allowed:
            return True
        if not self.allowed:
            return False
        theirs = normalize_origin(origin)
        return theirs is not None and any(theirs == normalize_origin(item) for item in self.allowed)


# Methods each endpoint answers (for 405 Allow and CORS preflight answers).
_METHODS = {
    "/sse": "GET",
    "/ws": "GET",
    "/cancel": "POST",
    "/debug/drop": "POST",
    "/v1/chat/completions": "POST",
    "/v1/responses": "GET, POST",
    "/v1/models": "GET",
    "/auth/token": "POST",
    "/streams": "POST",
}


def allowed_methods(path: str, chat_path: str = "/api/chat") -> str:
    if path == chat_path:
        return "GET, POST"  # POST: DefaultChatTransport; GET upgraded: WebSocketChatTransport
    if path.startswith(chat_path + "/") and path.endswith("/stop"):
        return "POST"
    if path.startswith("/v1/responses/"):  # retrieve, cancel, delete, input_items
        return "GET, POST, DELETE"
    return _METHODS.get(path, "GET")


def starts_stream(
    method: str, path: str, query: str, last_event_id: str | None, chat_path: str = "/api/chat"
) -> bool:
    """Whether this request starts a generation (what the rate limit counts)."""
    if method == "POST" and path in (
        "/v1/chat/completions",
        "/streams",
        "/v1/responses",
        chat_path,
    ):
        return True
    if method == "GET" and path == "/sse":
        if last_event_id:
            return False
        # Resuming (last_event_id) or reading a stream POST /streams made (stream)
        # starts nothing.
        if "last_event_id" not in query and "stream" not in query:
            return True
        return not any(
            name in ("last_event_id", "stream") and value for name, value in parse_qsl(query, True)
        )
    return False


@dataclass
class RateLimiter:
    """At most ``per_minute`` stream starts per client address per minute,
    as a token bucket (bursts up to ``per_minute``, refilled evenly).

    Memory stays bounded: a full bucket is the same as no entry, so entries
    are dropped once full (swept when the table grows)."""

    per_minute: float
    clock: Callable[[], float] = time.monotonic
    max_entries: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, address: str) -> float:
        """Spend one start for ``address``: 0.0 if allowed, else the seconds to
        wait before one is (for ``Retry-After``)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        rate = self.per_minute / 60.0
        tokens, stamp = self._buckets.get(address, (self.per_minute, now))
        tokens = min(self.per_minute, tokens + (now - stamp) * rate)
        if tokens >= 1.0:
            self._buckets[address] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_entries:
                self._sweep(now)
            return 0.0
        self._buckets[address] = (tokens, now)
        return (1.0 - tokens) / rate

    def _sweep(self, now: float) -> None:
        rate = self.per_minute / 60.0
        self._buckets = {
            address: (tokens, stamp)
            for address, (tokens, stamp) in self._buckets.items()
            if tokens + (now - stamp) * rate < self.per_minute
        }

    def refusal(self, wait: float) -> Refusal:
        seconds = max(1, math.ceil(wait))
        return Refusal(
            429,
            "rate_limited",
            f"too many streams started from this address; retry in {seconds} s",
            (("Retry-After", str(seconds)),),
        )
