"""Stream ids and event ids (``S:seq``, sent as SSE ``id:`` and read back from
``Last-Event-ID``). Pure code."""

from __future__ import annotations

import re
from typing import Any

from .errors import ProtocolError

STREAM_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
# ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() rejects or misreads.
DECIMAL = re.compile(r"[0-9]{1,9}")


def format_event_id(stream: str, seq: int) -> str:
    return f"{stream}:{seq}"


def parse_event_id(value: str) -> tuple[str, int]:
    """Parse ``S:seq`` as sent in ``Last-Event-ID``; raise ProtocolError if malformed."""
    stream, sep, seq_text = value.strip().rpartition(":")
    if not sep or not STREAM_ID.fullmatch(stream) or not DECIMAL.fullmatch(seq_text):
        raise ProtocolError(
            "invalid_last_event_id",
            "Last-Event-ID must look like 'STREAM:SEQ' as sent in the event's id field",
        )
    return stream, int(seq_text)


def validate_stream_id(value: Any) -> str:
    if not isinstance(value, str) or not STREAM_ID.fullmatch(value):
        raise ProtocolError("invalid_stream", "'stream' must be a stream id from a start event")
    return value
