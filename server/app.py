"""Wiring: settings in, a Tornado application out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import tornado.web

from . import protocol
from .backends.base import Backend
from .openai_compat import ChatCompletionsHandler, ModelHandler, ModelsHandler
from .sse_handler import SSEHandler
from .streams import MemoryStreamStore
from .streams_api import StreamsHandler
from .web import (
    STATIC_DIR,
    CancelHandler,
    ConnectionRegistry,
    DropHandler,
    HealthHandler,
    IndexHandler,
    NotFoundHandler,
)
from .ws_handler import StreamSocketHandler

__all__ = ["Settings", "make_backend", "make_app", "http_server_options"]


@dataclass
class Settings:
    """Everything the server can be told (``python -m server --help`` documents each)."""

    host: str = "127.0.0.1"
    port: int = 8888
    backend: str = "synthetic"
    model: str | None = None
    tokens_per_second: float = 30.0
    first_token_latency: float = 0.25
    fail_after_tokens: int | None = None
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_max_retries: int = 2
    store: str = "memory"
    retention: float = 300.0
    idle_timeout: float = 60.0
    heartbeat: float = 15.0
    retry_ms: int = 1000
    ws_ping_interval: float = 20.0
    allowed_origins: tuple[str, ...] = ()
    ws_compression: bool = False
    debug_drop: bool = True
    max_streams: int = 10_000
    max_streams_per_socket: int = 100
    api_key: str | None = None
    limits: protocol.Limits = field(default_factory=protocol.Limits)


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "synthetic":
        from .backends.synthetic import SyntheticBackend

        return SyntheticBackend(
            model=settings.model or "twinstream-synthetic",
            tokens_per_second=settings.tokens_per_second,
            first_token_latency=settings.first_token_latency,
            fail_after_tokens=settings.fail_after_tokens,
        )
    if settings.backend == "openai":
        from .backends.openai_backend import OpenAIBackend

        return OpenAIBackend(
            model=settings.model or "gpt-4o-mini",
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            max_retries=settings.openai_max_retries,
        )
    raise ValueError(f"unknown backend {settings.backend!r}; use synthetic or openai")


def make_app(settings: Settings, store: MemoryStreamStore | None = None) -> tornado.web.Application:
    """Build the application. ``store`` defaults to an in-memory store over
    ``make_backend(settings)``; it is available as ``app.settings['store']``."""
    if settings.store != "memory":
        raise ValueError(f"unknown store {settings.store!r}; only 'memory' is available")
    if store is None:
        store = MemoryStreamStore(
            make_backend(settings),
            retention=settings.retention,
            idle_timeout=settings.idle_timeout,
            max_live_streams=settings.max_streams,
        )
    connections = ConnectionRegistry()
    # what the backend cannot do is refused when a request is parsed, before a stream starts
    limits = replace(
        settings.limits, supported_parameters=getattr(store.backend, "parameters", None)
    )
    common = {"store": store, "limits": limits, "connections": connections}
    openai_args = {"store": store, "limits": limits, "api_key": settings.api_key}
    debug_routes: list[Any] = (
        [(r"/debug/drop", DropHandler, {"store": store, "connections": connections})]
        if settings.debug_drop
        else []
    )
    return tornado.web.Application(
        debug_routes
        + [
            (r"/", IndexHandler),
            (r"/healthz", HealthHandler, {"store": store}),
            (
                r"/sse",
                SSEHandler,
                {**common, "retry_ms": settings.retry_ms, "heartbeat": settings.heartbeat},
            ),
            (
                r"/ws",
                StreamSocketHandler,
                {
                    **common,
                    "allowed_origins": settings.allowed_origins,
                    "compression": settings.ws_compression,
                    "max_streams_per_socket": settings.max_streams_per_socket,
                },
            ),
            (r"/streams", StreamsHandler, {"store": store, "limits": limits}),
            (r"/cancel", CancelHandler, {"store": store}),
            (
                r"/v1/chat/completions",
                ChatCompletionsHandler,
                {**openai_args, "heartbeat": settings.heartbeat},
            ),
            (r"/v1/models", ModelsHandler, openai_args),
            (r"/v1/models/(.+)", ModelHandler, openai_args),
        ],
        default_handler_class=NotFoundHandler,
        static_path=STATIC_DIR,
        # Static files gzip; the streaming handlers switch transforms off themselves.
        compress_response=True,
        # A ping unanswered for one interval closes the socket (Tornado's default).
        websocket_ping_interval=settings.ws_ping_interval or None,
        # The prompt limit plus room for JSON escaping; larger frames close the socket (1009).
        websocket_max_message_size=settings.limits.max_prompt_bytes * 8,
        store=store,
        connections=connections,
        twinstream_settings=settings,
    )


def http_server_options(settings: Settings) -> dict[str, Any]:
    """Options for the HTTPServer in front of the app. A prompt travels in the
    URL of ``/sse``: percent-encoding can triple its bytes, so the header limit
    grows with ``max_prompt_bytes`` (Tornado's default is 64 KiB)."""
    return {"max_header_size": 3 * settings.limits.max_prompt_bytes + 16 * 1024}
