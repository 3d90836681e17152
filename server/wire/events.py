"""The events of a stream (server -> client), the same JSON on both transports; how a
delta is kept in the log (a record); strict JSON; the resume rule.
Pure code: no tornado, no asyncio, no I/O. ``docs/protocol.md`` is the prose version."""

from __future__ import annotations

import json
import re
from typing import Any, cast

from ..backends.base import FINISH_REASONS as MODEL_FINISH_REASONS
from ..backends.base import Piece
from .errors import ProtocolError

#: a model's reasons, and ``cancelled``: a stream its client (or the idle reaper) stopped
FINISH_REASONS = (*MODEL_FINISH_REASONS, "cancelled")
TERMINAL_TYPES = ("done", "error")


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


def is_terminal(event: dict[str, Any]) -> bool:
    """True for the last event of a stream (``done`` or a stream's ``error``)."""
    return event.get("type") in TERMINAL_TYPES and event.get("stream") is not None


# ensure_ascii=False keeps tokens readable; JSON escapes CR/LF inside strings,
# so the result never contains a raw line break (one SSE data line).
# allow_nan=False: NaN/Infinity are not JSON (RFC 8259) and browsers reject them.
# One encoder for the process: json.dumps with non-default options builds a new
# JSONEncoder per call, which costs as much as the encoding itself.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(event: Any) -> str:
    """Serialise an event (or any JSON value) to the compact one-line JSON both
    transports carry."""
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


# A plain text delta as a log sends it: the head, ``content`` (one JSON string) and
# ``t``, nothing else (a delta with a tool call, a refusal or logprobs has more).
_PLAIN_DELTA = re.compile(
    rb'\{"type":"delta","stream":"[^"\\]*","seq":[0-9]+,"content":'
    rb'("[^"\\]*(?:\\.[^"\\]*)*"),"t":[-+.0-9eE]+\}'
)


def plain_text_content(text: bytes) -> bytes | None:
    """The ``content`` of a plain text delta (``head,"content":"...","t":T}``,
    how a stream keeps and sends a text token) as the JSON string it holds,
    quotes included, copied as it is; None for any other event. The one fast
    path of every view: an empty content (``b'""'``) makes no output in any of
    them, as the event decoded would not."""
    match = _PLAIN_DELTA.fullmatch(text)
    return None if match is None else match.group(1)


def check_resume(last_seq: int, ended: bool, after: int, position: str = "after") -> bool:
    """The one resume rule every transport applies: may a follower resume after
    ``after``? True when there is something to follow; False when the stream ended
    and ``after`` is its last event — every event was delivered, a result, not an
    error (SSE answers 204, which tells EventSource to stop for good; WebSocket
    sends the ``stream_ended`` error event, :func:`~server.wire.errors.stream_ended`).

    ``after`` beyond the log raises ProtocolError ``invalid_<position>`` (400): the
    client claims events the server never sent. ``position`` names the client's
    field: ``after`` (WebSocket) or ``last_event_id`` (SSE).
    """
    if after > last_seq:
        raise ProtocolError(f"invalid_{position}", f"'{position}' is ahead of the stream")
    return not (ended and after == last_seq)
