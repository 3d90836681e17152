"""The wire contract shared by both transports: event objects, client messages,
event ids and request validation. Pure code: no tornado, no asyncio, no I/O.

``docs/protocol.md`` is the prose version of this module; keep them in step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, cast

from .backends.base import ChatRequest, Piece

__all__ = [
    "ProtocolError",
    "Limits",
    "StartRequest",
    "ResumeRequest",
    "CancelRequest",
    "ClientMessage",
    "start_event",
    "delta_event",
    "delta_event_from_piece",
    "done_event",
    "error_event",
    "is_terminal",
    "dumps",
    "delta_head",
    "delta_record",
    "delta_from_record",
    "is_delta_record",
    "error_body",
    "format_event_id",
    "parse_event_id",
    "parse_client_message",
    "validate_prompt",
    "validate_max_tokens",
    "check_resume",
    "stream_not_found",
    "FINISH_REASONS",
]

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "cancelled")
TERMINAL_TYPES = ("done", "error")


class ProtocolError(ValueError):
    """A request or message that breaks the contract.

    ``code`` is a stable machine-readable string sent to the client;
    ``message`` is a human sentence that says what to fix; ``status`` is the
    HTTP status the HTTP transports answer with.
    """

    def __init__(
        self, code: str, message: str, status: int = 400, ref: Any = None, stream: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        #: the ``ref`` of the WebSocket message that failed, echoed in the error event
        self.ref = ref
        #: the stream the failed message named, if any (echoed in the error event)
        self.stream = stream


@dataclass(frozen=True)
class Limits:
    """Bounds on what a client may ask for."""

    max_prompt_bytes: int = 32 * 1024
    max_tokens_limit: int = 4096
    default_max_tokens: int = 256
    #: the request parameters the backend honours; others get ``unsupported_parameter``
    #: (``None``: the backend takes every parameter, e.g. the openai backend forwards them)
    supported_parameters: frozenset[str] | None = None


# --- events (server -> client) -------------------------------------------------


def start_event(stream: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"type": "start", "stream": stream, "seq": 0, "model": model, **extra}


def delta_event(stream: str, seq: int, content: str, **extra: Any) -> dict[str, Any]:
    return {"type": "delta", "stream": stream, "seq": seq, "content": content, **extra}


def delta_event_from_piece(stream: str, seq: int, piece: Piece) -> dict[str, Any]:
    """The ``delta`` event for one backend piece. ``content`` is always there
    (``""`` when the piece is only a tool call, a refusal or logprobs), so
    clients that only read text keep working; the other fields only when set."""
    if isinstance(piece, str):
        return {"type": "delta", "stream": stream, "seq": seq, "content": piece}
    event = delta_event(stream, seq, piece.content)
    if piece.tool_calls:
        event["tool_calls"] = list(piece.tool_calls)
    if piece.refusal:
        event["refusal"] = piece.refusal
    if piece.logprobs:
        event["logprobs"] = piece.logprobs
    return event


def done_event(stream: str, seq: int, finish_reason: str, **extra: Any) -> dict[str, Any]:
    if finish_reason not in FINISH_REASONS:
        raise ValueError(f"unknown finish_reason {finish_reason!r}")
    return {"type": "done", "stream": stream, "seq": seq, "finish_reason": finish_reason, **extra}


def error_event(
    stream: str | None, seq: int | None, code: str, message: str, **extra: Any
) -> dict[str, Any]:
    """An error. ``stream``/``seq`` are ``None`` for errors about a WebSocket
    message that belongs to no stream (bad JSON, unknown type, ...)."""
    return {
        "type": "error",
        "stream": stream,
        "seq": seq,
        "code": code,
        "message": message,
        **extra,
    }


def error_body(status: int, code: str, message: str) -> dict[str, dict[str, str]]:
    """An HTTP error's JSON body, shaped like OpenAI's so its SDKs read it too."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"code": code, "message": message, "type": kind}}


def is_terminal(event: dict[str, Any]) -> bool:
    """True for the last event of a stream (``done`` or a stream's ``error``)."""
    return event.get("type") in TERMINAL_TYPES and event.get("stream") is not None


# ensure_ascii=False keeps tokens readable; JSON escapes CR/LF inside strings,
# so the result never contains a raw line break (one SSE data line).
# allow_nan=False: NaN/Infinity are not JSON (RFC 8259) and browsers reject them.
# One encoder for the process: json.dumps with non-default options builds a new
# JSONEncoder per call, which costs as much as the encoding itself.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(event: dict[str, Any]) -> str:
    """Serialise an event to the compact one-line JSON both transports carry."""
    return _ENCODER.encode(event)


_encode_string = json.encoder.encode_basestring  # the C encoder, ensure_ascii=False


# A text delta is kept in a stream's log as a *record*: its JSON minus what
# every delta of the stream shares (the head up to "seq":) and minus the seq
# (the event's index): ``T,"CONTENT"``, with T the repr of ``t``. It is the
# sent JSON, factored, not another representation: delta_from_record puts
# the shared parts back by concatenation. Records never start with "{".


def delta_head(stream: str) -> bytes:
    """What every delta of ``stream`` starts with (a validated stream id)."""
    return f'{{"type":"delta","stream":"{stream}","seq":'.encode()


def delta_record(content: str, t: float) -> bytes:
    """The log record of a text delta (see above)."""
    return f"{t!r},{_encode_string(content)}".encode()


def is_delta_record(record: bytes) -> bool:
    return record[:1] != b"{"


def delta_from_record(
    head: bytes, seq: int, record: bytes | bytearray, start: int = 0, end: int | None = None
) -> bytes:
    """The delta's JSON, byte-equal to ``dumps(delta_event(...))`` encoded, from
    the record ``record[start:end]`` (a live log passes its whole buffer and the
    record's bounds: the record is not sliced out of the buffer first)."""
    if end is None:
        end = len(record)
    comma = record.index(b",", start, end)  # the repr of a float holds no comma
    content, t = cast(bytes, record[comma + 1 : end]), cast(bytes, record[start:comma])
    return b'%b%d,"content":%b,"t":%b}' % (head, seq, content, t)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str | bytes) -> Any:
    """Parse client JSON strictly (RFC 8259): no NaN/Infinity, no lone UTF-16
    surrogates (``"\\ud800"`` decodes to a str that cannot be encoded as UTF-8).
    Raises ValueError."""
    value = json.loads(text, parse_constant=_reject_constant)
    try:
        # Raises ValueError for 1e999 (parsed as inf), UnicodeEncodeError
        # (a ValueError too) for a lone surrogate.
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string holds a lone surrogate") from None
    return value


# --- event ids ("S:seq") ---------------------------------------------------------

_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
# ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() rejects or misreads.
_DECIMAL = re.compile(r"[0-9]{1,9}")


def format_event_id(stream: str, seq: int) -> str:
    return f"{stream}:{seq}"


def parse_event_id(value: str) -> tuple[str, int]:
    """Parse ``S:seq`` as sent in ``Last-Event-ID``; raise ProtocolError if malformed."""
    stream, sep, seq_text = value.strip().rpartition(":")
    if not sep or not _STREAM_ID.fullmatch(stream) or not _DECIMAL.fullmatch(seq_text):
        raise ProtocolError(
            "invalid_last_event_id",
            "Last-Event-ID must look like 'STREAM:SEQ' as sent in the event's id field",
        )
    return stream, int(seq_text)


def stream_not_found() -> ProtocolError:
    """The answer to a resume of a stream that is unknown, expired or evicted."""
    return ProtocolError(
        "stream_not_found",
        "this stream is unknown or expired and cannot be resumed; start a new one",
        status=404,
    )


def check_resume(last_seq: int, ended: bool, after: int, position: str = "after") -> None:
    """Decide whether a follower may resume after ``after``; the one rule every
    transport applies. Raises ProtocolError:

    - ``after`` beyond the log: ``invalid_<position>`` (400) — the client
      claims events the server never sent;
    - the stream ended and ``after`` is its last event: ``stream_ended`` (SSE
      answers 204, which tells EventSource to stop for good; WebSocket sends
      an ``error`` event).

    ``position`` names the client's field: ``after`` (WebSocket) or
    ``last_event_id`` (SSE).
    """
    if after > last_seq:
        raise ProtocolError(f"invalid_{position}", f"'{position}' is ahead of the stream")
    if ended and after == last_seq:
        raise ProtocolError(
            "stream_ended", "this stream ended and every event was delivered", status=204
        )


def validate_stream_id(value: Any) -> str:
    if not isinstance(value, str) or not _STREAM_ID.fullmatch(value):
        raise ProtocolError("invalid_stream", "'stream' must be a stream id from a start event")
    return value


# --- request validation (shared by /sse, /ws and /v1) ------------------------------


def validate_prompt(prompt: Any, limits: Limits) -> str:
    if prompt is None:
        raise ProtocolError("missing_prompt", "'prompt' is required and must not be empty")
    if not isinstance(prompt, str):
        raise ProtocolError("invalid_prompt", "'prompt' must be a string")
    if not prompt.strip():
        raise ProtocolError("missing_prompt", "'prompt' is required and must not be empty")
    try:
        size = len(prompt.encode("utf-8"))
    except UnicodeEncodeError:
        raise ProtocolError("invalid_prompt", "'prompt' is not valid Unicode text") from None
    if size > limits.max_prompt_bytes:
        raise ProtocolError(
            "prompt_too_long",
            f"'prompt' is {size} bytes; the limit is {limits.max_prompt_bytes} bytes",
            status=413,
        )
    return prompt


def validate_max_tokens(
    value: Any, limits: Limits, name: str = "max_tokens", from_query: bool = False
) -> int:
    """Accept an int (or, with ``from_query``, a decimal string); ``None`` means the default."""
    if value is None:
        return limits.default_max_tokens
    if from_query and isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise ProtocolError(
                "invalid_max_tokens",
                f"'{name}' must be an integer from 1 to {limits.max_tokens_limit}",
            )
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(
            "invalid_max_tokens", f"'{name}' must be an integer from 1 to {limits.max_tokens_limit}"
        )
    if not 1 <= value <= limits.max_tokens_limit:
        raise ProtocolError(
            "invalid_max_tokens",
            f"'{name}' is {value}; it must be from 1 to {limits.max_tokens_limit}",
        )
    return value


# --- WebSocket client messages ------------------------------------------------------


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


def parse_client_message(text: str, limits: Limits) -> ClientMessage:
    """Parse one WebSocket text message from a client; raise ProtocolError."""
    try:
        message = loads_strict(text)
    except (ValueError, RecursionError):
        raise ProtocolError("invalid_json", "message is not valid JSON (RFC 8259, UTF-8)") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "message must be a JSON object")
    try:
        return _parse_message_object(message, limits)
    except ProtocolError as exc:
        exc.ref = message.get("ref")
        raise


def _parse_message_object(message: dict[str, Any], limits: Limits) -> ClientMessage:
    kind = message.get("type")
    if kind == "start":
        from .chat_request import parse_chat_request  # it builds on this module

        fields = {key: value for key, value in message.items() if key not in ("type", "ref")}
        prompt = fields.pop("prompt", None)
        if prompt is None and fields.get("messages") is None:
            raise ProtocolError("missing_prompt", "'prompt' or 'messages' is required")
        if prompt is not None and not isinstance(prompt, str):
            raise ProtocolError("invalid_prompt", "'prompt' must be a string")
        return StartRequest(parse_chat_request(fields, limits, prompt=prompt), message.get("ref"))
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
