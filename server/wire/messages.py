"""WebSocket client messages (``start``, ``resume``, ``cancel``), parsed and validated
into dataclasses. Pure code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends.base import ChatRequest
from .chat_request import parse_chat_request
from .errors import ProtocolError
from .events import dumps
from .ids import validate_stream_id
from .limits import Limits
from .strict_json import depth_of, loads_object


@dataclass(frozen=True)
class StartRequest:
    """A ``start`` message: the chat to complete and the client's ``ref``."""

    chat: ChatRequest
    ref: Any = None

    @property
    def prompt(self) -> str:
        return self.chat.last_user_message

    @property
    def max_tokens(self) -> int:
        return self.chat.max_tokens


@dataclass(frozen=True)
class ResumeRequest:
    stream: str
    after: int


@dataclass(frozen=True)
class CancelRequest:
    stream: str


ClientMessage = StartRequest | ResumeRequest | CancelRequest


#: Bounds on a ``ref``, which the ``start`` event (and any error) echoes back.
MAX_REF_DEPTH = 32
MAX_REF_BYTES = 1024


def validate_ref(ref: Any) -> Any:
    """A ``start`` message's ``ref``, any JSON value within the bounds; else
    ProtocolError ``invalid_ref``."""
    if ref is None or isinstance(ref, (str, int, float, bool)) and len(str(ref)) <= 64:
        return ref  # the common case: a number or a short label
    if depth_of(ref) > MAX_REF_DEPTH or len(dumps(ref).encode()) > MAX_REF_BYTES:
        raise ProtocolError(
            "invalid_ref",
            f"'ref' is echoed in the start event: it may nest at most {MAX_REF_DEPTH} "
            f"levels and take at most {MAX_REF_BYTES} bytes of JSON",
        )
    return ref


def parse_client_message(text: str, limits: Limits) -> ClientMessage:
    """Parse one WebSocket text message from a client; raise ProtocolError."""
    message = loads_object(text, "the message")
    try:
        return _parse_message_object(message, limits)
    except ProtocolError as exc:
        ref = message.get("ref")
        if exc.code != "invalid_ref":  # an error echoes the ref, unless the ref is the error
            exc.ref = ref
        raise


def _parse_message_object(message: dict[str, Any], limits: Limits) -> ClientMessage:
    kind = message.get("type")
    if kind == "start":
        fields = {key: value for key, value in message.items() if key not in ("type", "ref")}
        prompt = fields.pop("prompt", None)
        if prompt is None and fields.get("messages") is None:
            raise ProtocolError("missing_prompt", "'prompt' or 'messages' is required")
        if prompt is not None and not isinstance(prompt, str):
            raise ProtocolError("invalid_prompt", "'prompt' must be a string")
        ref = validate_ref(message.get("ref"))
        return StartRequest(parse_chat_request(fields, limits, prompt=prompt), ref)
    if kind == "resume":
        after = message.get("after")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ProtocolError("invalid_after", "'after' must be the last seq received (>= 0)")
        return ResumeRequest(stream=validate_stream_id(message.get("stream")), after=after)
    if kind == "cancel":
        return CancelRequest(stream=validate_stream_id(message.get("stream")))
    if kind is None:
        raise ProtocolError("invalid_message", "message has no 'type'")
    raise ProtocolError(
        "unknown_type", f"unknown message type {str(kind)[:40]!r}; use start, resume or cancel"
    )
