"""WebSocket mode of the Responses API: ``GET /v1/responses`` upgraded. The
client sends ``response.create`` messages (the POST body without ``stream`` and
``background``, plus an optional ``stream_id`` naming its lane:
``server/wire/responses_socket.py``) and receives the same events as over SSE,
each carrying the lane's ``stream_id`` when the create gave one. Several
responses run at once on one socket, one per lane; a second create on a lane
whose response is still in flight gets an ``error`` event
(``response_already_in_flight``) and the socket stays open.

The socket is a ``/ws`` socket underneath (:class:`StreamSocketHandler`): one
sink, a relay per lane (the lane is free again once its relay stopped), pings,
slow-consumer cuts, drain (1012 with a shared store) and RFC 6455 close codes;
only the messages and the framing differ. A response whose socket dropped goes
on: retrieve it over SSE with ``starting_after`` (resume across transports)."""

from __future__ import annotations

import json
from typing import Any

from ..core.responses_state import ResponsesOptions, start_response, view_of
from ..core.store import StreamStore
from ..wire import errors, events
from ..wire.limits import Limits
from ..wire.responses_events import ResponseView, plain_delta
from ..wire.responses_socket import CreateMessage, error_event, parse_create
from .event_stream import RelayOptions
from .websocket import SocketOptions, StreamSocketHandler

__all__ = ["ResponsesSocketHandler"]

#: the key of the lane a create without ``stream_id`` runs on (a lane is never empty)
_UNNAMED = ""


class LaneEvents:
    """A lane's view of its response: log events to Responses events (JSON
    texts), each with the lane's ``stream_id``."""

    __slots__ = ("view", "lane")

    def __init__(self, view: ResponseView, lane: str | None):
        self.view = view
        self.lane = lane

    def __call__(self, first_seq: int, texts: list[bytes]) -> list[bytes]:
        view, lane = self.view, self.lane
        out = []
        for text in texts:
            plain = plain_delta(text)
            fast = view.text_delta(*plain) if plain is not None else None
            if fast is not None:  # the common case: one text token
                if lane is not None:
                    fast = f'{fast[:-1]},"stream_id":"{lane}"}}'  # a checked lane: no escaping
                out.append(fast.encode())
                continue
            for event in view.feed(json.loads(text)):
                if lane is not None:
                    event["stream_id"] = lane
                out.append(events.dumps(event).encode())
        return out


class ResponsesSocketHandler(StreamSocketHandler):
    """One socket, any number of lanes, one response in flight per lane."""

    TRANSPORT = "responses-ws"
    BINARY = ("invalid_message", "send JSON text messages")

    def initialize(  # type: ignore[override]
        self,
        options: SocketOptions,
        store: StreamStore,
        limits: Limits,
        relays: RelayOptions,
        responses: ResponsesOptions,
    ) -> None:
        super().initialize(options, store, limits, relays)
        self.lifetimes = responses

    def parse(self, text: str) -> CreateMessage:
        return parse_create(text)

    async def handle(self, request: CreateMessage) -> None:
        lane = _UNNAMED if request.lane is None else request.lane
        if lane in self._following:
            raise errors.ProtocolError(
                "response_already_in_flight",
                "this lane's response is still in flight; wait for its terminal event "
                "or use another stream_id",
                param="stream_id",
            )
        self.admit_start("websocket_stream_limit_reached", "responses")
        started = await start_response(
            self.store, self.limits, self.lifetimes, request.fields, websocket=True
        )
        self.started(started.stream)
        self.follow(lane, started.stream, -1, LaneEvents(view_of(started.record), request.lane))

    def error_frame(self, exc: errors.ProtocolError, request: Any) -> bytes:
        lane = request.lane if isinstance(request, CreateMessage) else None
        return events.dumps(error_event(exc, lane)).encode()
