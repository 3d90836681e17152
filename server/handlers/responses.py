"""The Responses API over HTTP: ``POST /v1/responses`` (streamed or not),
``GET /v1/responses/{id}`` (the object, or with ``stream=true`` its events
after ``starting_after``, then live), ``POST /v1/responses/{id}/cancel``,
``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``.

Every response is a twinstream stream: its events are the Responses view
(:mod:`server.wire.responses_events`) of the stream's log, so any response
can be resumed exactly, on any process sharing the store, and a closed
connection stops only the reading, not the generation (the idle timeout
reaps a response nobody reads)."""

from __future__ import annotations

import asyncio
import enum
import json
import re
from typing import Any

from ..core.log import StreamLog
from ..core.relay import Outcome
from ..core.responses_state import (
    KIND,
    ResponsesOptions,
    catch_up,
    load,
    not_found,
    snapshot,
    start_response,
    view_of,
)
from ..core.store import StreamStore
from ..metrics import Metrics
from ..wire import errors
from ..wire.chat_request import parse_json_body
from ..wire.limits import Limits
from ..wire.responses_events import ResponseView, encode_sse
from ..wire.responses_request import delivery, stream_of_response
from .event_stream import EventStreamHandler, RelayOptions, StreamEndpoint

__all__ = [
    "ResponsesHandler",
    "ResponseHandler",
    "ResponseCancelHandler",
    "InputItemsHandler",
    "ResponsesFrames",
]

_SEQUENCE = re.compile(r"-?[0-9]{1,18}")


class Replay(enum.Enum):
    """Where a resumed relay is: ``PENDING``, the catch-up's events still to
    send at its log seq; ``LIVE``, every event fed as it comes. A relay that is
    no resume starts LIVE; :meth:`ResponsesFrames._replayed` is the one move."""

    PENDING = "pending"
    LIVE = "live"


class ResponsesFrames:
    """A relay's frame function: log events to Responses events as SSE (``event:``
    and ``data:`` lines, as OpenAI sends them). A resume's catch-up fed the view
    the log event at ``replay_seq`` already: at that seq the relay writes
    ``pending`` (what it made after ``starting_after``) instead of feeding it again."""

    __slots__ = ("view", "pending", "replay_seq", "state")

    def __init__(
        self, view: ResponseView, pending: list[dict[str, Any]] | None = None, replay: int = -1
    ) -> None:
        self.view = view
        self.pending = pending or []
        self.replay_seq = replay
        self.state = Replay.PENDING if replay >= 0 else Replay.LIVE

    def _replayed(self) -> bytes:
        """PENDING -> LIVE: the catch-up's events, sent once."""
        out = encode_sse(self.pending)
        self.pending, self.state = [], Replay.LIVE
        return out

    def __call__(self, first_seq: int, texts: list[bytes]) -> bytes:
        at = self.replay_seq - first_seq
        if self.state is Replay.PENDING and 0 <= at < len(texts):
            return self._sse(texts[:at]) + self._replayed() + self._sse(texts[at + 1 :])
        return self._sse(texts)

    def _sse(self, texts: list[bytes]) -> bytes:
        # one encode per batch: a relay's batch is mostly text deltas
        return "".join(
            f"event: {kind}\ndata: {text}\n\n" for kind, text in self.view.frame_texts(texts)
        ).encode()


class _Responses(StreamEndpoint):
    """What every Responses handler takes, and OpenAI's error shape (``param``)."""

    def initialize(  # type: ignore[override]
        self,
        metrics: Metrics,
        store: StreamStore,
        limits: Limits,
        relays: RelayOptions,
        responses: ResponsesOptions,
    ) -> None:
        super().initialize(metrics, store, limits, relays)
        self.responses = responses

    def write_json(self, value: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.write(json.dumps(value).encode())


class _Streaming(EventStreamHandler, _Responses):
    def follow(self, stream: StreamLog, view: ResponseView, after: int, pending: list[Any]) -> None:
        """Relay the events after log seq ``after``; ``pending``: what the catch-up
        fed at ``after`` made after ``starting_after`` (sent as that seq's events)."""
        self.relays.watch.drainable.add(self)
        frame = ResponsesFrames(view)
        if pending:
            frame = ResponsesFrames(view, pending, replay=after)
            after -= 1
        frames = self.metrics.counting(frame, stream, "responses-sse")
        self.relay_events(stream, after, frames, "responses-sse")

    def drain(self, retry_ms: int, elsewhere: bool) -> None:
        """Shutting down: with a shared store, end the response now (the client
        retrieves with ``starting_after`` elsewhere); with the memory store the
        response goes on to its end (the store ends it by the drain deadline)."""
        sink = self._sink
        if sink is None or sink.closed or not elsewhere:
            return
        for relay in list(sink.relays):
            relay.stop(Outcome.DRAIN)


class ResponsesHandler(_Streaming):
    """``POST /v1/responses``: start a response; stream its events or answer
    the Response object (at once with ``background``, else once it ended)."""

    _waiting: asyncio.Future[None] | None = None
    _gone = False

    def prepare(self) -> None:
        self.data = parse_json_body(self.request.body, self.limits)
        self.streaming, _ = delivery(self.data)  # checked before anything is sent

    def on_connection_close(self) -> None:
        """A client waiting for a whole response left: stop waiting, so the
        response is no longer read and the idle clock starts (it goes on for
        whoever retrieves it, until the idle timeout)."""
        self._gone = True
        if self._waiting is not None:
            self._waiting.cancel()
        super().on_connection_close()

    async def post(self) -> None:
        if self.streaming and not self.open_event_stream("responses-sse"):
            return  # the client is gone: start nothing
        started = await start_response(self.store, self.limits, self.responses, self.data)
        stream = started.stream
        self.metrics.stream_started(stream, "responses-sse")
        if started.request.stream:
            self.follow(stream, view_of(started.record), -1, [])
            return
        if not started.request.background:
            if self._gone:
                return  # left while the response was starting
            self._waiting = asyncio.ensure_future(stream.wait_ended())
            try:
                await self._waiting
            except asyncio.CancelledError:
                if not self._gone:
                    raise
                return  # the client left: nobody to answer
            finally:
                self._waiting = None
        body = json.dumps(await snapshot(self.store, started.record)).encode()
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.write(body)
        self.metrics.answered(stream, "responses-sse", len(body))


def _starting_after(value: str | None) -> int:
    if value is None or value == "":
        return -1
    text = value.strip()
    if not _SEQUENCE.fullmatch(text) or int(text) < -1:
        raise errors.ProtocolError(
            "invalid_starting_after",
            "'starting_after' must be an event's sequence_number (an integer >= 0)",
            param="starting_after",
        )
    return int(text)


class ResponseHandler(_Streaming):
    """``GET /v1/responses/{id}`` (``stream=true``: its events after
    ``starting_after``, then live) and ``DELETE /v1/responses/{id}``."""

    async def get(self, value: str) -> None:
        record = await load(self.store, value)
        if self.get_query_argument("stream", "false").lower() != "true":
            self.write_json(await snapshot(self.store, record))
            return
        after = _starting_after(self.get_query_argument("starting_after", None))
        stream = await self.store.open(record["stream"])
        if stream is None:
            self.metrics.resume("responses-sse", "stream_not_found")
            raise not_found(value)
        view = view_of(record)
        try:
            seq, pending = catch_up(view, stream, after)
        except errors.ProtocolError as exc:
            self.metrics.resume("responses-sse", exc.code)
            raise
        self.metrics.resume("responses-sse", "resumed", stream)
        self.follow(stream, view, seq, pending)

    async def delete(self, value: str) -> None:
        record = await load(self.store, value)
        stream_id = record["stream"]
        await self.store.records.delete(KIND, stream_id)
        await self.store.cancel(stream_id)  # nobody may read it any more: stop paying for it
        self.write_json({"id": value, "object": "response", "deleted": True})


class ResponseCancelHandler(_Responses):
    """``POST /v1/responses/{id}/cancel``: generation stops wherever it runs;
    the answer is the Response object, ``cancelled`` unless it had ended."""

    async def post(self, value: str) -> None:
        record = await load(self.store, value)
        stream_id = record["stream"]
        if await self.store.cancel(stream_id):
            stream = await self.store.open(stream_id)
            if stream is not None and not stream.ended:
                try:
                    await asyncio.wait_for(
                        asyncio.shield(stream.ended_future()), self.responses.cancel_wait
                    )
                except asyncio.TimeoutError:
                    pass
        self.write_json(await snapshot(self.store, record))


class InputItemsHandler(_Responses):
    """``GET /v1/responses/{id}/input_items``: the request's input as items
    (``order`` desc by default, ``limit`` 1 to 100, ``after`` an item id)."""

    async def get(self, value: str) -> None:
        record = await load(self.store, value)
        stream_id = stream_of_response(value)
        items = [
            {"id": f"in_{stream_id}_{index}", **item}
            for index, item in enumerate(record["input_items"])
        ]
        order = self.get_query_argument("order", "desc")
        if order not in ("asc", "desc"):
            raise errors.ProtocolError(
                "invalid_parameter", "'order' must be asc or desc", param="order"
            )
        if order == "desc":
            items.reverse()
        after = self.get_query_argument("after", None)
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit_text = self.get_query_argument("limit", "20")
        if not _SEQUENCE.fullmatch(limit_text) or not 1 <= int(limit_text) <= 100:
            raise errors.ProtocolError(
                "invalid_parameter", "'limit' must be 1 to 100", param="limit"
            )
        page = items[: int(limit_text)]
        self.write_json(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > len(page),
            }
        )
