"""HTTP errors that are not protocol errors (a missing key, an unknown route):
each knows its HTTP status and the public ``code``/``message`` a client sees.
Protocol errors are :class:`server.wire.errors.ProtocolError`, answered by
``JsonErrorHandler.write_error``. Internal detail never leaves the
process: it goes to the log through ``log_message`` or the exception chain.
"""

from __future__ import annotations

from tornado.web import HTTPError

from ..wire.errors import error_body

__all__ = ["ApiError", "Unauthorized", "error_body"]


class ApiError(HTTPError):
    """An error answered as ``{"error": {"code", "message", "type"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        # log_message is %-formatted only when args are given; pass none.
        super().__init__(status, log_message=message)
        self.code = code
        self.message = message


class Unauthorized(ApiError):
    def __init__(self) -> None:
        super().__init__(401, "invalid_api_key", "missing or wrong API key (Authorization: Bearer)")
