"""The messages of the Responses API's WebSocket mode: ``response.create`` in
(the POST body without ``stream`` and ``background``, plus an optional
``stream_id`` naming its lane), OpenAI's ``error`` event out (with the lane's
``stream_id`` when the message named one).

Pure code: no tornado, no asyncio, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError, error_body
from .strict_json import MAX_DEPTH, TooDeep, loads_strict

__all__ = ["CreateMessage", "parse_create", "error_event"]

#: a lane's name: what ``stream_id`` may be (every event of the lane carries it, unescaped)
_LANE = re.compile(r"[A-Za-z0-9_.-]{1,256}")


@dataclass(frozen=True)
class CreateMessage:
    """A ``response.create``: its lane (None: the socket's unnamed lane) and
    the request's fields (``type`` and ``stream_id`` taken out)."""

    lane: str | None
    fields: dict[str, Any]


def parse_create(text: str) -> CreateMessage:
    """One client message; raises :class:`ProtocolError` (its ``param`` set
    where OpenAI names one)."""
    data = _parse(text)
    lane = _lane(data)
    fields = {key: value for key, value in data.items() if key not in ("type", "stream_id")}
    return CreateMessage(lane, fields)


def error_event(exc: ProtocolError, lane: str | None) -> dict[str, Any]:
    """OpenAI's WebSocket ``error`` event."""
    body = error_body(exc.status, exc.code, exc.message, exc.param)["error"]
    event: dict[str, Any] = {"type": "error", "status": exc.status, "error": body}
    if lane is not None:
        event["stream_id"] = lane
    return event


def _parse(message: str) -> dict[str, Any]:
    try:
        data = loads_strict(message)
    except TooDeep:
        raise ProtocolError(
            "invalid_json", f"the message nests deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError:
        raise ProtocolError("invalid_json", "the message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_message", "a message must be a JSON object")
    kind = data.get("type")
    if kind != "response.create":
        raise ProtocolError(
            "unknown_event_type" if isinstance(kind, str) else "invalid_message",
            f"unknown message type {str(kind)[:40]!r}; send response.create",
            param="type",
        )
    return data


def _lane(data: dict[str, Any]) -> str | None:
    lane = data.get("stream_id")
    if lane is None:
        return None
    if not isinstance(lane, str) or not _LANE.fullmatch(lane):
        raise ProtocolError(
            "invalid_stream_id",
            "'stream_id' must be 1 to 256 ASCII letters, digits, '_', '-' or '.'",
            param="stream_id",
        )
    return lane
