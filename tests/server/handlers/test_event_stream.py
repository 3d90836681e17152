"""The event-stream base shared by /sse and /v1 (server/handlers/event_stream.py): gzip that
never holds an event back, heartbeats on both, and the one error pipeline."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from server.app import Settings, make_app
from server.core.store import MemoryStreamStore


@pytest.fixture
def app(step_backend: Any, io_loop: Any) -> Any:
    settings = Settings(ws_ping_interval=0, sse_compression=True, heartbeat=0.05)
    application = make_app(
        settings, store=MemoryStreamStore.from_settings(step_backend, Settings())
    )
    yield application
    io_loop.run_sync(application.settings["store"].close, timeout=10)


async def test_gzip_sse_delivers_every_event_before_the_next_exists(
    http_server_client: Any, step_backend: Any
) -> None:
    """httpx inflates as bytes arrive: if the compressor held anything back,
    waiting for an event here would stall until the next piece."""
    url = http_server_client.get_url("/sse")
    async with httpx.AsyncClient(timeout=10) as client:
        async with aconnect_sse(
            client, "GET", url, params={"prompt": "p"}, headers={"Accept-Encoding": "gzip"}
        ) as source:
            assert source.response.headers["content-encoding"] == "gzip"
            assert source.response.headers["vary"] == "Accept-Encoding"
            events = source.aiter_sse()
            start = json.loads((await asyncio.wait_for(anext(events), 5)).data)
            assert start["type"] == "start"
            for piece in ["one", " two", " three"]:
                step_backend.release(piece)
                delta = json.loads((await asyncio.wait_for(anext(events), 5)).data)
                assert delta["content"] == piece
            step_backend.finish()
            done = json.loads((await asyncio.wait_for(anext(events), 5)).data)
            assert done["type"] == "done"


async def test_gzip_body_is_one_valid_gzip_member(
    http_server_client: Any, step_backend: Any
) -> None:
    url = http_server_client.get_url("/sse?prompt=p")
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response:
            step_backend.release("alpha")
            step_backend.finish()
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = inflate.decompress(raw).decode()
    assert inflate.eof  # the gzip trailer was sent at the end
    assert text.count("data: ") == 3 and '"content":"alpha"' in text


async def test_no_gzip_for_clients_that_do_not_ask(
    http_server_client: Any, step_backend: Any
) -> None:
    url = http_server_client.get_url("/sse?prompt=p")
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            assert "content-encoding" not in response.headers
            step_backend.finish()
            body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert body.startswith(b"id: ")


async def test_v1_streams_send_heartbeats_while_the_model_is_silent(
    http_server_client: Any, step_backend: Any
) -> None:
    url = http_server_client.get_url("/v1/chat/completions")
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", url, json=body) as response:
            received = b""
            async for chunk in response.aiter_bytes():
                received += chunk
                if received.count(b": heartbeat\n") >= 2:
                    break
            step_backend.finish()
    assert received.startswith(b"data: ")  # the role chunk came first, then heartbeats


async def test_protocol_errors_become_json_http_errors(http_server_client: Any) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(http_server_client.get_url("/sse?max_tokens=abc&prompt=x"))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_max_tokens"
        response = await client.post(http_server_client.get_url("/cancel?stream=AAAAAAAAAAAA"))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "stream_not_found"
