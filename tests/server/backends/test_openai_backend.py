"""The openai backend, end to end against real OpenAI-compatible HTTP servers on loopback.

The upstream is a second instance of this server's own ``/v1`` (synthetic
model), or a tiny Tornado app that misbehaves on purpose. The SDK is never
mocked: every byte crosses a real socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import tornado.httpserver
import tornado.testing
import tornado.web

from server.app import Settings, make_app
from server.backends.base import ChatRequest, Finish
from server.backends.openai_backend import OpenAIBackend
from server.backends.synthetic import synthetic_tokens
from server.core.store import MemoryStreamStore
from server.edge.server import make_server

Upstream = Callable[[tornado.web.Application], str]


@pytest.fixture
def upstream(io_loop: Any) -> AsyncIterator[Upstream]:
    """Serve an application on a free loopback port; returns its /v1 base URL.
    Servers stop, and their connections close, before the loop does."""
    servers: list[tornado.httpserver.HTTPServer] = []

    def start(application: tornado.web.Application) -> str:
        sock, port = tornado.testing.bind_unused_port()
        # A twinstream app gets its edge (where API keys are checked), as in python -m server.
        server = (
            make_server(application, {})
            if "edge" in application.settings
            else tornado.httpserver.HTTPServer(application)
        )
        server.add_sockets([sock])
        servers.append(server)
        return f"http://127.0.0.1:{port}/v1"

    yield start  # type: ignore[misc]
    for server in servers:
        server.stop()
        io_loop.run_sync(server.close_all_connections, timeout=10)


async def generate(backend: OpenAIBackend, prompt: str, max_tokens: int) -> tuple[str, Finish]:
    pieces, finish = [], None
    async for piece in backend.generate(ChatRequest.from_prompt(prompt, max_tokens)):
        if isinstance(piece, Finish):
            finish = piece
        else:
            pieces.append(piece)
    assert finish is not None
    return "".join(pieces), finish


async def stream_events(backend: OpenAIBackend, prompt: str, max_tokens: int = 50) -> list[dict]:
    """Run a whole twinstream stream over ``backend``; its event log."""
    store = MemoryStreamStore.from_settings(backend, Settings())
    stream = await store.create(ChatRequest.from_prompt(prompt, max_tokens))
    await asyncio.wait_for(stream.wait_ended(), 20)
    await store.close()
    return stream.events


def synthetic_upstream(**overrides: Any) -> tornado.web.Application:
    return make_app(Settings(tokens_per_second=0, ws_ping_interval=0, **overrides))


async def test_relays_upstream_deltas(upstream: Upstream) -> None:
    backend = OpenAIBackend(
        "twinstream-synthetic", base_url=upstream(synthetic_upstream()), api_key="k", max_retries=0
    )
    text, finish = await generate(backend, "Tell me a story", 30)
    await backend.close()
    assert text == "".join(synthetic_tokens("Tell me a story")[:30])
    assert finish.reason == "length"


async def test_whole_server_on_openai_backend_serves_sse(
    upstream: Upstream, http_client: Any
) -> None:
    """twinstream (openai backend) -> twinstream (synthetic) over /v1, read over /sse."""
    base = upstream(synthetic_upstream())
    downstream = make_app(
        Settings(
            backend="openai",
            model="twinstream-synthetic",
            openai_base_url=base,
            openai_api_key="k",
            openai_max_retries=0,
            ws_ping_interval=0,
        )
    )
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(downstream)
    server.add_sockets([sock])
    try:
        response = await http_client.fetch(
            f"http://127.0.0.1:{port}/sse?prompt=relay+me&max_tokens=12"
        )
        events = [
            json.loads(line[6:])
            for line in response.body.decode().splitlines()
            if line.startswith("data: ")
        ]
    finally:
        server.stop()
        await downstream.settings["store"].close()
    assert events[0]["model"] == "twinstream-synthetic"
    assert "".join(e.get("content", "") for e in events) == "".join(
        synthetic_tokens("relay me")[:12]
    )
    assert events[-1]["finish_reason"] == "length"


async def test_upstream_failing_mid_stream_ends_with_an_error_event(upstream: Upstream) -> None:
    backend = OpenAIBackend(
        "m", base_url=upstream(synthetic_upstream(fail_after_tokens=3)), max_retries=0
    )
    events = await stream_events(backend, "fail soon")
    await backend.close()
    assert [e["type"] for e in events] == ["start", "delta", "delta", "delta", "error"]
    assert events[-1]["code"] == "upstream_error"
    assert "127.0.0.1" not in events[-1]["message"]  # nothing internal leaks


async def test_bad_key_ends_with_upstream_auth(upstream: Upstream) -> None:
    base = upstream(synthetic_upstream(api_key="the-right-key"))
    backend = OpenAIBackend("m", base_url=base, api_key="a-wrong-key", max_retries=0)
    events = await stream_events(backend, "who am i")
    await backend.close()
    assert [e["type"] for e in events] == ["start", "error"]
    assert events[-1]["code"] == "upstream_auth"
    assert "a-wrong-key" not in json.dumps(events)


class RateLimited(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_status(429)
        self.write({"error": {"message": "slow down", "type": "rate_limit_error"}})


class CutsOffMidStream(tornado.web.RequestHandler):
    """Two chunks of a streamed completion, then the TCP connection just closes."""

    async def post(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        for word in ("Hello", " there"):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            self.write(f"data: {json.dumps(chunk)}\n\n")
            await self.flush()
        self.request.connection.close()


class EndsWithoutFinish(tornado.web.RequestHandler):
    """A well-formed response that ends before any finish_reason or [DONE]."""

    def post(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
        }
        self.write(f"data: {json.dumps(chunk)}\n\n")


@pytest.mark.parametrize(
    ("handler", "code", "deltas"),
    [
        (RateLimited, "upstream_rate_limited", 0),
        (CutsOffMidStream, "upstream_unavailable", 2),
        (EndsWithoutFinish, "upstream_disconnected", 1),
    ],
)
async def test_misbehaving_upstreams_end_with_an_error_never_a_hang(
    upstream: Upstream, handler: type[tornado.web.RequestHandler], code: str, deltas: int
) -> None:
    base = upstream(tornado.web.Application([(r"/v1/chat/completions", handler)]))
    backend = OpenAIBackend("m", base_url=base, max_retries=0, timeout=10)
    events = await stream_events(backend, "anything")
    await backend.close()
    assert [e["type"] for e in events] == ["start"] + ["delta"] * deltas + ["error"]
    assert events[-1]["code"] == code


async def test_unreachable_upstream_is_upstream_unavailable() -> None:
    sock, port = tornado.testing.bind_unused_port()
    sock.close()  # nothing listens there now
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    events = await stream_events(backend, "hello?")
    await backend.close()
    assert events[-1]["type"] == "error"
    assert events[-1]["code"] == "upstream_unavailable"


async def test_cancel_closes_the_upstream_request_so_it_stops_too(upstream: Upstream) -> None:
    upstream_app = make_app(
        Settings(tokens_per_second=50, first_token_latency=0, ws_ping_interval=0)
    )
    backend = OpenAIBackend("m", base_url=upstream(upstream_app), max_retries=0)
    store = MemoryStreamStore.from_settings(backend, Settings())
    stream = await store.create(ChatRequest.from_prompt("long story", 4000))
    while stream.last_seq < 3:
        await asyncio.sleep(0.01)
    stream.cancel()
    await stream.wait_ended()
    assert stream.events[-1]["finish_reason"] == "cancelled"
    upstream_streams = list(upstream_app.settings["store"]._streams.values())
    assert len(upstream_streams) == 1
    await asyncio.wait_for(upstream_streams[0].wait_ended(), 5)
    assert upstream_streams[0].events[-1]["finish_reason"] == "cancelled"
    await store.close()
    await backend.close()
    await upstream_app.settings["store"].close()
