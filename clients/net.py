"""Where the server is, and why connecting to it failed: URL handling and
the one-line messages both transports give when a connection cannot be made."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_URL", "base_url", "endpoint_url", "unreachable_message"]

DEFAULT_URL = "http://127.0.0.1:8888"


def base_url(url: str) -> tuple[str, str, str]:
    """Split a server URL into (scheme ``http``/``https``, ``host:port``, path prefix).

    Accepts ``http(s)://`` and ``ws(s)://`` URLs, with or without a trailing
    ``/sse`` or ``/ws``, so either endpoint's URL names the server.
    """
    parts = urlsplit(url if "://" in url else "http://" + url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s):// or ws(s):// server URL: {url!r}")
    path = parts.path.rstrip("/")
    for endpoint in ("/sse", "/ws"):
        if path.endswith(endpoint):
            path = path[: -len(endpoint)]
    return scheme, parts.netloc, path


def endpoint_url(url: str, endpoint: str, websocket: bool = False) -> str:
    scheme, netloc, prefix = base_url(url)
    if websocket:
        scheme = "wss" if scheme == "https" else "ws"
    return urlunsplit((scheme, netloc, prefix + endpoint, "", ""))


def unreachable_message(scheme: str, netloc: str, exc: OSError) -> str:
    """One line on why connecting failed, and what to do about it."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLError):
        return (
            f"no TLS with {netloc} ({exc.reason or reason}); if the server speaks plain "
            f"HTTP, use http://{netloc}"
        )
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"cannot connect to {netloc}: {reason}; is the server running? "
            "Start one with: python3 -m server"
        )
    return f"cannot connect to {netloc}: {reason}"


def connect_timeout_message(scheme: str, netloc: str, timeout: float) -> str:
    message = f"could not connect to {netloc} within {timeout:g} s"
    if scheme in ("https", "wss"):
        # A plain-HTTP server waits for a request line that a TLS hello never ends.
        message += f" (no TLS handshake; if the server speaks plain HTTP, use http://{netloc})"
    return message
