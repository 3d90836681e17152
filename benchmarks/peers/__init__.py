"""Reference servers that speak twinstream's wire contract for new streams.

Each is what a Python user would otherwise pick -- ``sse-starlette`` on
``uvicorn`` for SSE, the ``websockets`` library for WebSocket -- serving the
same deterministic synthetic model (imported from :mod:`server`, not copied).
They do not keep an event log, so they cannot resume a stream: a reconnecting
client starts over. Both print ``<name> serving on http://HOST:PORT/`` when ready.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from server.backends.base import BackendError, ChatRequest, Finish, close_pieces
from server.backends.synthetic import SyntheticBackend
from server.wire import events

from ..config import SERVER_DEFAULTS

__all__ = ["build_parser", "completion_events", "new_stream_id"]


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    # twinstream's own defaults, so each server alone paces the model alike
    parser.add_argument(
        "--tokens-per-second", type=float, default=SERVER_DEFAULTS.tokens_per_second
    )
    parser.add_argument(
        "--first-token-latency", type=float, default=SERVER_DEFAULTS.first_token_latency
    )
    # the event loop, as twinstream's --loop (uvicorn's own --loop uvloop does the same)
    parser.add_argument("--loop", default=SERVER_DEFAULTS.loop, choices=("asyncio", "uvloop"))
    return parser


def new_stream_id() -> str:
    return secrets.token_urlsafe(16)


def _stamp(event: dict[str, Any]) -> dict[str, Any]:
    event["t"] = round(time.time(), 6)  # produced-at, as twinstream's streams do
    return event


async def completion_events(
    backend: SyntheticBackend, stream_id: str, prompt: str, max_tokens: int
) -> AsyncIterator[dict[str, Any]]:
    """The events of one completion, in order: deltas stamped with the model's
    release time, the others when they are made."""
    yield _stamp(events.start_event(stream_id, backend.model, created=int(time.time())))
    seq = 1
    pieces = backend.generate(ChatRequest.from_prompt(prompt, max_tokens))
    try:
        async for piece in pieces:
            if isinstance(piece, Finish):
                extra = {"usage": piece.usage} if piece.usage else {}
                yield _stamp(events.done_event(stream_id, seq, piece.reason, **extra))
                return
            if piece:
                event = events.delta_event_from_piece(stream_id, seq, piece)
                # when the model released it, as twinstream stamps its deltas
                event["t"] = round(backend.piece_time(), 6)
                yield event
                seq += 1
    except BackendError as exc:
        yield _stamp(events.error_event(stream_id, seq, exc.code, exc.message))
    finally:
        # as twinstream's streams do, so neither pays for asyncio's finaliser hook
        await close_pieces(pieces)
