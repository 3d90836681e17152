"""The frames of the AI SDK's ``WebSocketChatTransport`` (its
``WebSocketChatTransportRequest`` / ``WebSocketChatTransportResponse`` types).

Client frames: ``send`` (``requestId``, chat ``id``, ``trigger``,
``messageId``, ``messages``, ``headers``, ``body``, ``metadata``), ``resume``
(``requestId``, ``id``, ``lastSequence``: omitted for a full replay) and
``abort`` (``requestId``). Server frames: ``start``, ``chunk`` (``requestId``,
``sequence``: 0, 1, 2... per request, the UI message ``chunk``), ``end``,
``error`` (``errorText``) and ``no-active``. Every server frame carries a
string ``requestId`` (the SDK drops a connection whose frame lacks one), ``""``
for a frame too broken to name its request.

Pure code: no tornado, no asyncio, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError
from .limits import Limits
from .strict_json import loads_object
from .ui_message_chunks import UIMessageView
from .ui_message_request import ENVELOPE, UIChat, check_chat_id, parse_ui_chat

__all__ = [
    "SendFrame",
    "ResumeFrame",
    "AbortFrame",
    "FrameError",
    "parse_client_frame",
    "request_frame",
    "error_frame",
    "SocketChunks",
]

_MAX_REQUEST_ID = 200


class FrameError(ProtocolError):
    """A client frame that breaks the contract; ``request_id`` names its request
    (``""`` when the frame names none)."""

    def __init__(self, request_id: str, code: str, message: str) -> None:
        super().__init__(code, message)
        self.request_id = request_id


@dataclass(frozen=True)
class SendFrame:
    request_id: str
    request: UIChat


@dataclass(frozen=True)
class ResumeFrame:
    request_id: str
    chat_id: str
    #: the last ``sequence`` the client holds (-1: replay everything)
    last_sequence: int


@dataclass(frozen=True)
class AbortFrame:
    request_id: str


ClientFrame = SendFrame | ResumeFrame | AbortFrame


def _request_id(data: dict[str, Any]) -> str:
    value = data.get("requestId")
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_REQUEST_ID:
        raise FrameError("", "invalid_request_id", "'requestId' must be a string of 1 to 200")
    return value


def _parse(data: Any, limits: Limits) -> ClientFrame:
    if not isinstance(data, dict):
        raise FrameError("", "invalid_frame", "a frame must be a JSON object")
    request_id = _request_id(data)
    kind = data.get("type")
    try:
        if kind == "abort":
            return AbortFrame(request_id)
        if kind == "resume":
            after = data.get("lastSequence")
            if after is not None and (
                isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < 2**53
            ):
                raise ProtocolError(
                    "invalid_sequence", "'lastSequence' must be an integer >= 0, or omitted"
                )
            chat_id = check_chat_id(data.get("id"))
            return ResumeFrame(request_id, chat_id, -1 if after is None else after)
        if kind == "send":
            body = data.get("body", {})
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise ProtocolError("invalid_body", "'body' must be a JSON object")
            fields = {key: data[key] for key in ENVELOPE if key in data}
            return SendFrame(request_id, parse_ui_chat({**body, **fields}, limits))
    except ProtocolError as exc:
        raise FrameError(request_id, exc.code, exc.message) from None
    raise FrameError(request_id, "unknown_type", "'type' must be send, resume or abort")


def parse_client_frame(text: str, limits: Limits) -> ClientFrame:
    """One client text frame; raises :class:`FrameError`."""
    limit = limits.body_bytes
    # a character is 1 to 4 bytes of UTF-8: encode only when the count is in doubt
    if len(text) > limit or (
        len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit
    ):
        raise FrameError(
            "", "frame_too_large", f"the frame is larger than a request may be ({limit} bytes)"
        )
    try:
        data = loads_object(text, "the frame", "invalid_frame")
    except ProtocolError as exc:
        raise FrameError("", exc.code, exc.message) from None
    return _parse(data, limits)


def request_frame(kind: str, request_id: str) -> str:
    """A ``start``, ``end`` or ``no-active`` frame."""
    return '{"type":"%s","requestId":%s}' % (kind, json.dumps(request_id))


def error_frame(request_id: str, text: str) -> str:
    return json.dumps({"type": "error", "requestId": request_id, "errorText": text})


class SocketChunks:
    """One request's answer as ``chunk`` frames (UTF-8 JSON texts): the view's
    chunks numbered from 0, those up to ``last_sequence`` skipped (a resume),
    then ``end``. Give it the events from ``seq`` 0."""

    __slots__ = ("view", "head", "sequence", "last_sequence", "request_id")

    def __init__(self, view: UIMessageView, request_id: str, last_sequence: int = -1) -> None:
        self.view = view
        self.request_id = request_id
        self.head = b'{"type":"chunk","requestId":%b,"sequence":' % json.dumps(request_id).encode()
        self.sequence = 0
        self.last_sequence = last_sequence

    def frames(self, texts: list[bytes]) -> list[bytes]:
        view = self.view
        ended_before = view.ended
        out = []
        head = self.head
        for text in texts:
            for chunk in view.chunk_bytes(text):
                sequence = self.sequence
                self.sequence = sequence + 1
                if sequence > self.last_sequence:
                    out.append(b'%b%d,"chunk":%b}' % (head, sequence, chunk))
        if view.ended and not ended_before:
            out.append(request_frame("end", self.request_id).encode())
        return out
