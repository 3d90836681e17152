"""Wiring: settings in, a Tornado application out."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import tornado.web
from tornado.routing import Rule

from .backends.base import Backend
from .config import Settings
from .core.responses_state import ResponsesOptions
from .core.store import MemoryStreamStore, StreamStore
from .core.watch import ConnectionWatch
from .edge.redaction import log_request
from .edge.server import Edge
from .handlers.actions import CancelHandler, DropHandler
from .handlers.event_stream import RelayOptions
from .handlers.metrics import MetricsHandler
from .handlers.openai import ChatCompletionsHandler, ModelHandler, ModelsHandler
from .handlers.pages import STATIC_DIR, HealthHandler, IndexHandler, NotFoundHandler
from .handlers.responses import (
    InputItemsHandler,
    ResponseCancelHandler,
    ResponseHandler,
    ResponsesHandler,
)
from .handlers.responses_socket import ResponsesSocketHandler
from .handlers.routing import RequestMatches, WebSocketRequiredHandler
from .handlers.sse import SSEHandler
from .handlers.streams import StreamsHandler
from .handlers.token import TokenHandler
from .handlers.ui_chat import UIChatHandler, UIChatStopHandler, UIChatStreamHandler
from .handlers.ui_chat_socket import UIChatSocketHandler
from .handlers.websocket import SocketOptions, StreamSocketHandler
from .metrics import Metrics

__all__ = ["Settings", "make_backend", "make_store", "make_app", "http_server_options"]


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "synthetic":
        from .backends.synthetic import SyntheticBackend

        return SyntheticBackend.from_settings(settings)
    if settings.backend == "openai":
        from .backends.openai_backend import OpenAIBackend

        return OpenAIBackend(
            model=settings.model or "gpt-4o-mini",
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            max_retries=settings.openai_max_retries,
        )
    raise ValueError(f"unknown backend {settings.backend!r}; use synthetic or openai")


def make_store(settings: Settings) -> StreamStore:
    if settings.store != "memory":
        from .store.redis import RedisStreamStore

        return RedisStreamStore.from_settings(make_backend(settings), settings)
    return MemoryStreamStore.from_settings(make_backend(settings), settings)


def make_app(settings: Settings, store: StreamStore | None = None) -> tornado.web.Application:
    """Build the application. ``store`` defaults to :func:`make_store`; it is
    available as ``app.settings['store']``, the relays' watch as
    ``app.settings['watch']``."""
    if store is None:
        store = make_store(settings)
    watch = ConnectionWatch(
        write_timeout=settings.write_timeout,
        heartbeat=settings.heartbeat,
        # WebSocket keepalive: the watch pings (not a Tornado task per socket);
        # a ping unanswered for one interval closes the socket.
        ping_interval=settings.ws_ping_interval,
    )
    relays = RelayOptions(
        watch=watch,
        max_pending_bytes=settings.max_pending_bytes,
        sse_compression=settings.sse_compression,
        retry_ms=settings.retry_ms,
    )
    # what the backend cannot do is refused when a request is parsed, before a stream starts
    limits = replace(
        settings.limits, supported_parameters=getattr(store.backend, "parameters", None)
    )
    metrics = Metrics(watch)
    edge = Edge.from_settings(settings, metrics)
    # Every handler gets its dependencies one way: these arguments, through initialize().
    counted = {"metrics": metrics}
    on_store = {**counted, "store": store}
    common = {**on_store, "limits": limits, "relays": relays}
    # WebSocket handlers share their options in one object (fewer attributes per socket)
    socket_options = SocketOptions(
        metrics=metrics,
        edge=edge,
        compression=settings.ws_compression,
        max_streams_per_socket=settings.max_streams_per_socket,
    )
    sockets = {"options": socket_options, "store": store, "limits": limits, "relays": relays}
    # A WebSocket path asked for without a handshake: JSON 400 websocket_required (GET), 405
    not_upgraded = {**counted, "edge": edge}
    openai_args = common  # API keys are checked at the edge, before the body is read
    # The Responses API (issue 22): records live the retention once a response
    # ended, and up to an hour of generation before.
    lifetimes = ResponsesOptions.from_settings(settings)
    responses = {**common, "responses": lifetimes}
    responses_routes: list[Any] = [
        Rule(
            RequestMatches(r"/v1/responses", "GET", upgrade=True),
            ResponsesSocketHandler,
            {**sockets, "responses": lifetimes},
        ),
        Rule(RequestMatches(r"/v1/responses", "GET"), WebSocketRequiredHandler, not_upgraded),
        (r"/v1/responses", ResponsesHandler, responses),  # POST (with or without Upgrade)
        (r"/v1/responses/([^/]+)", ResponseHandler, responses),
        (r"/v1/responses/([^/]+)/cancel", ResponseCancelHandler, responses),
        (r"/v1/responses/([^/]+)/input_items", InputItemsHandler, responses),
    ]
    debug_routes: list[Any] = (
        [(r"/debug/drop", DropHandler, on_store)] if settings.debug_drop else []
    )
    # The AI SDK's chat transports (issue 23): POST = DefaultChatTransport (SSE), GET
    # upgraded = WebSocketChatTransport, at --chat-path.
    chat = re.escape(settings.chat_path)
    chat_args = {**common, "resume_grace": settings.chat_resume_grace}
    chat_routes: list[Any] = [
        Rule(RequestMatches(chat, "POST"), UIChatHandler, chat_args),
        (chat + r"/([^/]+)/stream", UIChatStreamHandler, chat_args),
        (chat + r"/([^/]+)/stop", UIChatStopHandler, chat_args),
        Rule(
            RequestMatches(chat, "GET", upgrade=True),
            UIChatSocketHandler,
            {**sockets, "resume_grace": settings.chat_resume_grace},
        ),
        (chat, WebSocketRequiredHandler, not_upgraded),
    ]
    socket_routes: list[Any] = [
        Rule(RequestMatches(r"/ws", "GET", upgrade=True), StreamSocketHandler, sockets),
        (r"/ws", WebSocketRequiredHandler, not_upgraded),
    ]
    return tornado.web.Application(
        debug_routes
        + chat_routes
        + [
            (r"/", IndexHandler, counted),
            (r"/healthz", HealthHandler, on_store),
            (r"/sse", SSEHandler, common),
            *socket_routes,
            (r"/streams", StreamsHandler, {**on_store, "limits": limits}),
            (r"/cancel", CancelHandler, on_store),
            (r"/v1/chat/completions", ChatCompletionsHandler, openai_args),
            *responses_routes,
            (r"/v1/models", ModelsHandler, openai_args),
            (r"/v1/models/(.+)", ModelHandler, openai_args),
            (r"/auth/token", TokenHandler, {**counted, "access": edge.access}),
            (r"/metrics", MetricsHandler, counted),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=counted,
        static_path=STATIC_DIR,
        # Static files gzip; the streaming handlers switch transforms off themselves.
        compress_response=True,
        # the body limit (--max-body-bytes); a larger frame closes the socket (1009)
        websocket_max_message_size=settings.limits.body_bytes,
        store=store,
        watch=watch,
        twinstream_settings=settings,
        metrics=metrics,
        edge=edge,
        log_function=log_request,  # the access log never holds prompts or stream ids
    )


def http_server_options(settings: Settings) -> dict[str, Any]:
    """Options for the HTTPServer in front of the app. A prompt travels in the
    URL of ``/sse``: percent-encoding can triple its bytes, so the header limit
    grows with ``max_prompt_bytes`` (Tornado's default is 64 KiB)."""
    return {
        "max_header_size": 3 * settings.limits.max_prompt_bytes + 16 * 1024,
        # Slowloris: headers (and keep-alive idleness) and bodies get a deadline.
        "idle_connection_timeout": settings.idle_connection_timeout or None,
        "body_timeout": settings.body_timeout or None,
    }
