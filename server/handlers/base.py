"""The base of every handler: errors as OpenAI-shaped JSON, in one place."""

from __future__ import annotations

from http import HTTPStatus
from types import TracebackType
from typing import Any

import tornado.web

from ..metrics import Metrics
from ..wire import errors

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class JsonErrorHandler(tornado.web.RequestHandler):
    """Every error is a JSON body with a stable code; never a traceback.

    This is the one place a :class:`~server.wire.errors.ProtocolError` becomes an HTTP
    answer: handlers raise it from anywhere and its status, code and message
    are sent as they are.
    """

    #: the operator's view (issue 10): every route hands it to ``initialize``, as it
    #: hands every dependency; errors are counted by code
    metrics: Metrics | None = None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, errors.ProtocolError):
            status_code = exc.status
            self.set_status(status_code)
            code, message = exc.code, exc.message
        elif status_code >= 500:
            failure = errors.internal_error()
            code, message = failure.code, failure.message
        else:
            code = _CODES.get(status_code, "http_error")
            try:
                message = HTTPStatus(status_code).phrase
            except ValueError:
                message = "request failed"
        self.clear_header("Content-Encoding")
        if status_code == 204:
            self.finish()
            return
        if self.metrics is not None:
            self.metrics.error(code)  # errors by code (issue 10)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        # OpenAI's shape everywhere: ``param`` names the request field at fault, if any
        param = exc.param if isinstance(exc, errors.ProtocolError) else None
        self.finish(errors.error_json(status_code, code, message, param))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, errors.ProtocolError):
            return  # the client's mistake, answered in write_error; nothing to log
        super().log_exception(typ, value, tb)
