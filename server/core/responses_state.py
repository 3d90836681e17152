"""A response's state, shared by the Responses handlers (HTTP and WebSocket
mode): its record in ``store.records`` (kind ``response``, keyed by its stream
id: the request's echo, its conversation and input items; it lives while the
stream is retained), the stream that carries its events (the Response object,
the answer), and the conversation ``previous_response_id`` continues. Any
process sharing the store finds both, so retrieve, resume and cancel work on
any of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..wire import errors
from ..wire.limits import Limits
from ..wire.responses_events import ResponseView, answer_message, fold
from ..wire.responses_request import (
    ResponsesRequest,
    parse_responses_request,
    previous_response_id,
    response_id,
    stream_of_response,
)
from .log import StreamLog
from .store import StreamStore

__all__ = [
    "KIND",
    "ResponsesOptions",
    "Started",
    "not_found",
    "load",
    "start_response",
    "snapshot",
    "view_of",
    "catch_up",
]

log = logging.getLogger("twinstream.responses")
KIND = "response"


@dataclass
class ResponsesOptions:
    """How long response records live: ``live_ttl`` while the stream generates,
    ``ttl`` (the store's retention) from its end; how long a cancel waits for
    the end. Holds the record refreshes under way (one per generating response)."""

    ttl: float
    live_ttl: float
    cancel_wait: float = 5.0
    refreshing: set[asyncio.Task[None]] = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ResponsesOptions:
        return cls(
            ttl=settings.retention,
            live_ttl=settings.retention + settings.response_generation_ttl,
            cancel_wait=settings.response_cancel_wait,
        )

    def refresh_at_end(self, store: StreamStore, stream: StreamLog) -> None:
        """When ``stream`` ends, its record lives ``ttl`` more (as long as the
        stream is retained); a record deleted meanwhile stays deleted."""
        stream.ended_future().add_done_callback(lambda _: self._refresh(store, stream.id))

    def _refresh(self, store: StreamStore, stream_id: str) -> None:
        task = asyncio.ensure_future(_expire(store, stream_id, self.ttl))
        self.refreshing.add(task)
        task.add_done_callback(self.refreshing.discard)


async def _expire(store: StreamStore, stream_id: str, ttl: float) -> None:
    try:
        await store.records.expire(KIND, stream_id, ttl)
    except Exception:  # the store went away (shutdown): the record expires on its own
        log.warning("a response record was not refreshed", exc_info=True)


@dataclass
class Started:
    request: ResponsesRequest
    stream: StreamLog
    record: dict[str, Any]


def not_found(value: str, param: str | None = None) -> errors.ProtocolError:
    code = "previous_response_not_found" if param == "previous_response_id" else "not_found"
    return errors.ProtocolError(
        code,
        f"Response with id '{value[:80]}' not found (unknown, deleted or past its retention).",
        404,
        param=param,
    )


async def load(store: StreamStore, value: str, param: str | None = None) -> dict[str, Any]:
    """The record of response ``value``; ProtocolError 404 if there is none."""
    stream_id = stream_of_response(value)
    record = await store.records.get(KIND, stream_id) if stream_id else None
    if record is None:
        raise not_found(value, param)
    return record


def _events(stream: StreamLog) -> list[dict[str, Any]]:
    return [json.loads(text) for text in stream.read(-1, max_bytes=1 << 62)]


async def _history(store: StreamStore, value: str) -> tuple[dict[str, Any], ...]:
    """The conversation ``previous_response_id`` continues: its messages and answer."""
    record = await load(store, value, "previous_response_id")
    stream = await store.open(record["stream"])
    if stream is None:
        raise not_found(value, "previous_response_id")
    if not stream.ended:
        raise errors.ProtocolError(
            "response_in_progress",
            f"Response '{value[:80]}' is still in progress; continue from it once it ended.",
            param="previous_response_id",
        )
    answer = answer_message(_events(stream))
    messages = tuple(record["messages"])
    return (*messages, answer) if answer else messages


async def start_response(
    store: StreamStore,
    limits: Limits,
    options: ResponsesOptions,
    data: dict[str, Any],
    websocket: bool = False,
) -> Started:
    """Validate a request, start its stream and keep its record; ProtocolError
    (400, 404 ``previous_response_not_found``, 503) if it cannot start."""
    previous = previous_response_id(data)
    history = await _history(store, previous) if previous is not None else ()
    request = parse_responses_request(data, limits, history, websocket=websocket)
    stream = await store.create(request.chat)
    base = {"id": response_id(stream.id), "created_at": stream.created, "model": stream.model}
    record = {
        "stream": stream.id,
        "response": {**base, **request.echo},
        "messages": list(request.messages),
        "input_items": list(request.input_items),
    }
    try:
        await store.records.put(KIND, stream.id, record, ttl=options.live_ttl)
    except BaseException:
        with contextlib.suppress(Exception):
            await store.cancel(stream.id)  # a response nobody can find must not generate
        raise
    options.refresh_at_end(store, stream)
    return Started(request, stream, record)


def view_of(record: dict[str, Any]) -> ResponseView:
    return ResponseView(record["response"], record["stream"])


async def snapshot(store: StreamStore, record: dict[str, Any]) -> dict[str, Any]:
    """The Response object as of now (its stream's events so far)."""
    stream = await store.open(record["stream"])
    if stream is None:  # past its retention (or evicted): the response is gone
        raise not_found(record["response"]["id"])
    view = view_of(record)
    fold(view, _events(stream))
    return view.response()


def catch_up(
    view: ResponseView, stream: StreamLog, starting_after: int
) -> tuple[int, list[dict[str, Any]]]:
    """Feed the view the log's events up to where event ``starting_after + 1``
    is made: (the last seq fed, the events after ``starting_after`` it made).
    A relay then goes on from that seq. ``starting_after`` past the events
    made so far is a ProtocolError (400)."""
    seq = -1
    pending: list[dict[str, Any]] = []
    while view.sequence <= starting_after and seq < stream.last_seq:
        texts = stream.read(seq, max_bytes=1)
        seq += 1
        made = view.feed(json.loads(texts[0]))
        pending = [event for event in made if event["sequence_number"] > starting_after]
    if view.sequence <= starting_after:
        raise errors.ProtocolError(
            "invalid_starting_after",
            f"'starting_after' is {starting_after}; this response has made "
            f"{view.sequence} events so far",
            param="starting_after",
        )
    return seq, pending
