"""The clients' exceptions: one small hierarchy under :class:`ClientError`.

Each message is one line a person can act on; the CLI prints it as it is.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ClientError",
    "ServerUnreachable",
    "Timeout",
    "HTTPStatusError",
    "WrongContentType",
    "MalformedData",
    "StreamError",
    "ConnectionLost",
    "ResumeFailed",
]


class ClientError(Exception):
    """Base class of every error the clients raise."""


class ServerUnreachable(ClientError):
    """No connection could be made (refused, no route, DNS failure)."""


class Timeout(ClientError):
    """Connecting, or waiting for the next bytes, took longer than allowed.

    ``phase`` is ``"connect"`` or ``"read"``; ``seconds`` the limit that ran out.
    """

    def __init__(self, message: str, phase: str, seconds: float) -> None:
        super().__init__(message)
        self.phase = phase
        self.seconds = seconds


class HTTPStatusError(ClientError):
    """The server answered with an error status.

    ``code``/``detail`` come from the server's JSON error body
    (``{"error": {"code", "message"}}``) when it sent one, else ``None``/the
    start of the body.
    """

    def __init__(self, status: int, code: str | None, detail: str) -> None:
        label = f"HTTP {status}" + (f" {code}" if code else "")
        super().__init__(f"{label}: {detail}" if detail else label)
        self.status = status
        self.code = code
        self.detail = detail


class WrongContentType(ClientError):
    """The response is not an event stream (e.g. an HTML page from a proxy)."""

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"expected text/event-stream, got {content_type or 'no Content-Type'}; "
            "is the URL a twinstream server?"
        )
        self.content_type = content_type


class MalformedData(ClientError):
    """Bytes that break the protocol: not HTTP, not an event stream, not JSON events."""


class StreamError(ClientError):
    """The stream ended with an ``error`` event (or the server refused a WebSocket message).

    ``code`` is the server's machine-readable code; ``event`` the whole event.
    """

    def __init__(self, event: dict[str, Any]) -> None:
        self.code = str(event.get("code") or "error")
        self.detail = str(event.get("message") or "")
        super().__init__(f"stream error {self.code}: {self.detail}")
        self.event = event


class ConnectionLost(ClientError):
    """The connection closed before the stream's last event and could not be
    resumed (no event had arrived yet, or reconnecting is switched off)."""


class Dropped(ClientError):
    """The connection closed or broke before the stream ended (internal to
    the transports: it triggers a resume, or becomes :class:`ConnectionLost`)."""


class ResumeFailed(ClientError):
    """Reconnecting after a drop did not work: attempts ran out, or the server
    no longer knows the stream. ``__cause__`` is the last underlying error."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
