"""The server's exception hierarchy: each error knows its HTTP status and the
public ``code``/``message`` a client sees. Internal detail never leaves the
process: it goes to the log through ``log_message`` or the exception chain.
"""

from __future__ import annotations

from tornado.web import HTTPError

from .protocol import ProtocolError, error_body

__all__ = ["ApiError", "StreamNotFound", "Unauthorized", "error_body"]


class ApiError(HTTPError):
    """An error answered as ``{"error": {"code", "message", "type"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        # log_message is %-formatted only when args are given; pass none.
        super().__init__(status, log_message=message)
        self.code = code
        self.message = message

    @classmethod
    def from_protocol(cls, exc: ProtocolError) -> ApiError:
        return cls(exc.status, exc.code, exc.message)


class StreamNotFound(ApiError):
    def __init__(self, stream_id: str) -> None:
        super().__init__(
            404,
            "stream_not_found",
            "this stream is unknown or expired and cannot be resumed; start a new one",
        )
        self.stream_id = stream_id


class Unauthorized(ApiError):
    def __init__(self) -> None:
        super().__init__(401, "invalid_api_key", "missing or wrong API key (Authorization: Bearer)")
