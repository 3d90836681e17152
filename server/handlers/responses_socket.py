"""WebSocket mode of the Responses API: ``GET /v1/responses`` upgraded. The
client sends ``response.create`` messages (the POST body without ``stream`` and
``background``, plus an optional ``stream_id`` naming its lane) and receives the
same events as over SSE, each carrying the lane's ``stream_id`` when the create
gave one. Several responses run at once on one socket, one per lane; a second
create on a lane whose response is still in flight gets an ``error`` event
(``response_already_in_flight``) and the socket stays open.

The socket is a ``/ws`` socket underneath (:class:`StreamSocketHandler`): one
sink, relays per response, pings, slow-consumer cuts, drain (1012 with a shared
store) and RFC 6455 close codes; only the messages and the framing differ. A
response whose socket dropped goes on: retrieve it over SSE with
``starting_after`` (resume across transports)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from tornado.httputil import HTTPServerRequest
from tornado.routing import PathMatches
from tornado.websocket import WebSocketProtocol13

from .. import tornado_adapter
from ..core.log import StreamLog
from ..core.relay import Relay
from ..core.responses_state import ResponsesOptions, start_response, view_of
from ..core.store import StreamStore
from ..wire import errors, events
from ..wire.limits import Limits
from ..wire.responses_events import ResponseView, plain_delta
from ..wire.strict_json import MAX_DEPTH, TooDeep, loads_strict
from .event_stream import RelayOptions
from .websocket import SocketOptions, StreamSocketHandler

__all__ = ["ResponsesSocketHandler", "UpgradeMatches"]

log = logging.getLogger("twinstream.responses")
_LANE = re.compile(r"[A-Za-z0-9_.-]{1,256}")


class UpgradeMatches(PathMatches):
    """The path, asked for with ``Upgrade: websocket`` (so ``GET /v1/responses``
    is WebSocket mode and ``POST /v1/responses`` the HTTP API)."""

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None
        return super().match(request)


def _error(exc: errors.ProtocolError, lane: str | None) -> dict[str, Any]:
    """OpenAI's WebSocket ``error`` event."""
    body = errors.openai_error_body(exc.status, exc.code, exc.message, exc.param)["error"]
    event: dict[str, Any] = {"type": "error", "status": exc.status, "error": body}
    if lane is not None:
        event["stream_id"] = lane
    return event


class ResponsesSocketFrames:
    """A relay's frame function: log events to Responses events, one text frame
    each, with the lane's ``stream_id``."""

    __slots__ = ("connection", "view", "lane")

    def __init__(self, connection: WebSocketProtocol13, view: ResponseView, lane: str | None):
        self.connection = connection
        self.view = view
        self.lane = lane

    def __call__(self, first_seq: int, texts: list[bytes]) -> bytes:
        frame, connection, lane, feed = (
            tornado_adapter.websocket_frame,
            self.connection,
            self.lane,
            self.view.feed,
        )
        out = []
        for text in texts:
            plain = plain_delta(text)
            fast = self.view.text_delta(*plain) if plain is not None else None
            if fast is not None:  # the common case: one text token
                if lane is not None:
                    fast = f'{fast[:-1]},"stream_id":"{lane}"}}'  # a checked lane: no escaping
                out.append(frame(connection, fast.encode()))
                continue
            for event in feed(json.loads(text)):
                if lane is not None:
                    event["stream_id"] = lane
                out.append(frame(connection, events.dumps(event).encode()))
        return b"".join(out)


class ResponsesSocketHandler(StreamSocketHandler):
    """One socket, any number of lanes, one response in flight per lane."""

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
        self._lanes: dict[str | None, StreamLog] = {}

    async def on_message(self, message: str | bytes) -> None:
        lane: str | None = None
        try:
            if isinstance(message, bytes):
                raise errors.ProtocolError("invalid_message", "send JSON text messages")
            data = _parse(message)
            lane = _lane(data)
            await self._create(data, lane)
        except errors.ProtocolError as exc:
            self.shared.metrics.error(exc.code)
            self._send(_error(exc, lane))
        except Exception:
            log.exception("a Responses WebSocket message failed")
            self._send(_error(errors.internal_error(), lane))

    async def _create(self, data: dict[str, Any], lane: str | None) -> None:
        busy = self._lanes.get(lane)
        if busy is not None and not busy.ended:
            raise errors.ProtocolError(
                "response_already_in_flight",
                "this lane's response is still in flight; wait for its terminal event "
                "or use another stream_id",
                param="stream_id",
            )
        self._started = [stream for stream in self._started if not stream.ended]
        if len(self._started) >= self.shared.max_streams_per_socket:
            raise errors.ProtocolError(
                "websocket_stream_limit_reached",
                f"this socket already runs {len(self._started)} responses; wait for one to end",
            )
        refusal = self.shared.edge.allow_start(self.request.remote_ip or "")
        if refusal is not None:
            raise errors.ProtocolError(refusal.code, refusal.message, 429)
        fields = {key: value for key, value in data.items() if key not in ("type", "stream_id")}
        started = await start_response(
            self.store, self.limits, self.lifetimes, fields, websocket=True
        )
        stream = started.stream
        self.shared.metrics.stream_started(stream, "responses-ws")
        self._started.append(stream)
        self._lanes[lane] = stream
        self._follow_response(stream, view_of(started.record), lane)

    def _follow_response(self, stream: StreamLog, view: ResponseView, lane: str | None) -> None:
        sink = self._sink
        connection = self.ws_connection
        if sink is None or sink.closed or not isinstance(connection, WebSocketProtocol13):
            return
        frames = ResponsesSocketFrames(connection, view, lane)
        relay = Relay(
            stream, -1, sink, self.shared.metrics.counting(frames, stream, "responses-ws")
        )
        self._following[stream.id] = relay
        relay.start()

    def open(self, *args: str, **kwargs: str) -> None:
        super().open(*args, **kwargs)
        self.shared.metrics.connection_closed("ws")  # counted as WebSocket mode instead
        self.shared.metrics.connection_opened("responses-ws")

    def on_close(self) -> None:
        if self._sink is not None:
            self.shared.metrics.connection_opened("ws")  # the base uncounts "ws"
            self.shared.metrics.connection_closed("responses-ws")
        super().on_close()
        self._lanes.clear()


def _parse(message: str) -> dict[str, Any]:
    try:
        data = loads_strict(message)
    except TooDeep:
        raise errors.ProtocolError(
            "invalid_json", f"the message nests deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError:
        raise errors.ProtocolError("invalid_json", "the message is not valid JSON") from None
    if not isinstance(data, dict):
        raise errors.ProtocolError("invalid_message", "a message must be a JSON object")
    kind = data.get("type")
    if kind != "response.create":
        raise errors.ProtocolError(
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
        raise errors.ProtocolError(
            "invalid_stream_id",
            "'stream_id' must be 1 to 256 ASCII letters, digits, '_', '-' or '.'",
            param="stream_id",
        )
    return lane
