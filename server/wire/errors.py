"""Errors of the wire contract: one hierarchy, each with a stable ``code`` for the client,
a sentence saying what to fix, and the HTTP status the HTTP transports answer with.
Pure code: no tornado, no asyncio, no I/O."""

from __future__ import annotations

import json
from typing import Any


class ProtocolError(ValueError):
    """A request or message that breaks the contract.

    ``code`` is a stable machine-readable string sent to the client;
    ``message`` is a human sentence that says what to fix; ``status`` is the
    HTTP status the HTTP transports answer with.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        ref: Any = None,
        stream: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        #: the ``ref`` of the WebSocket message that failed, echoed in the error event
        self.ref = ref
        #: the stream the failed message named, if any (echoed in the error event)
        self.stream = stream
        #: the request field at fault (OpenAI's ``param``; the Responses API sends it)
        self.param = param


def error_body(
    status: int, code: str | None, message: str, param: str | None = None
) -> dict[str, dict[str, str | None]]:
    """An HTTP error's JSON body, in OpenAI's shape (``param``, the request field
    at fault, null when none), so its SDKs read it: the one error body every
    endpoint, the edge and the streams' error events send."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_json(status: int, code: str, message: str, param: str | None = None) -> bytes:
    """:func:`error_body` as the bytes of an HTTP response body: every place that
    answers an HTTP error (handlers, the edge, the accept loop) sends these."""
    return json.dumps(error_body(status, code, message, param)).encode()


def stream_not_found() -> ProtocolError:
    """The answer to a resume of a stream that is unknown, expired or evicted."""
    return ProtocolError(
        "stream_not_found",
        "this stream is unknown or expired and cannot be resumed; start a new one",
        status=404,
    )


def stream_truncated() -> ProtocolError:
    """A resume after an event the shared store no longer holds: a failover of
    the store lost the end of the stream's log (its generator gone too)."""
    return ProtocolError(
        "stream_truncated",
        "the stream store lost the end of this stream (a failover); start it again",
        410,
    )


def stream_ended(stream: str) -> ProtocolError:
    """What a WebSocket ``resume`` of a stream whose every event was delivered gets
    (SSE answers 204 instead: see :func:`~server.wire.events.check_resume`)."""
    return ProtocolError(
        "stream_ended", "this stream ended and every event was delivered", stream=stream
    )


def internal_error() -> ProtocolError:
    """What a client gets when the server failed (a bug): no detail leaves the process."""
    return ProtocolError("internal_error", "the server failed; the error was logged", status=500)
