"""/v1 speaks enough OpenAI that the official SDK works against it, unmodified."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import openai
import pytest

from server.app import Settings
from server.backends.synthetic import synthetic_tokens


def sdk(http_server_client: Any, api_key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=http_server_client.get_url("/v1"), api_key=api_key, max_retries=0
    )


async def test_sdk_streams_the_same_text_as_sse(http_server_client: Any) -> None:
    async with sdk(http_server_client) as client:
        stream = await client.chat.completions.create(
            model="anything",
            messages=[{"role": "user", "content": "Tell me a story"}],
            max_tokens=25,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, finish, usage = [], None, None
        async for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
            usage = chunk.usage or usage
    assert "".join(pieces) == "".join(synthetic_tokens("Tell me a story")[:25])
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 25
    sse = await http_server_client.fetch("/sse?prompt=Tell+me+a+story&max_tokens=25")
    deltas = [
        json.loads(line[6:]) for line in sse.body.decode().splitlines() if line.startswith("data: ")
    ]
    assert "".join(e.get("content", "") for e in deltas) == "".join(pieces)


async def test_sdk_non_streaming_completion(http_server_client: Any) -> None:
    async with sdk(http_server_client) as client:
        completion = await client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hello"}], max_tokens=4096
        )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "".join(synthetic_tokens("hello"))
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(synthetic_tokens("hello"))


async def test_content_parts_are_accepted(http_server_client: Any) -> None:
    async with sdk(http_server_client) as client:
        completion = await client.chat.completions.create(
            model="x",
            messages=[{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
            max_completion_tokens=3,
        )
    assert completion.choices[0].message.content == "".join(synthetic_tokens("hello")[:3])


async def test_models_list(http_server_client: Any) -> None:
    async with sdk(http_server_client) as client:
        models = await client.models.list()
    assert [m.id for m in models.data] == ["twinstream-synthetic"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{", 400, "invalid_json"),
        (b"[]", 400, "invalid_body"),
        (b"{}", 400, "invalid_messages"),
        (b'{"messages": []}', 400, "invalid_messages"),
        (b'{"messages": [{"content": "no role"}]}', 400, "invalid_messages"),
        (b'{"messages": [{"role": "user", "content": 5}]}', 400, "invalid_messages"),
        (
            b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
            400,
            "invalid_messages",
        ),
        (b'{"messages": [{"role": "system", "content": "only system"}]}', 400, "missing_prompt"),
        (b'{"messages": [{"role": "user", "content": ""}]}', 400, "missing_prompt"),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "5"}',
            400,
            "invalid_max_tokens",
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 99999}',
            400,
            "invalid_max_tokens",
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
            400,
            "invalid_stream",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "x" * 40000}]}).encode(),
            413,
            "prompt_too_long",
        ),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', 400, "invalid_json"),
        (
            b'{"messages": [{"role": "system", "content": "\\udfff"}, '
            b'{"role": "user", "content": "hi"}]}',
            400,
            "invalid_json",
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": NaN}',
            400,
            "invalid_json",
        ),
        (b'{"messages": [{"role": "user", "content": "hi\xff"}]}', 400, "invalid_json"),
    ],
)
async def test_malformed_bodies_get_a_clear_json_error(
    http_server_client: Any, body: bytes, status: int, code: str
) -> None:
    response = await http_server_client.fetch(
        "/v1/chat/completions", method="POST", body=body, raise_error=False
    )
    assert response.code == status
    error = json.loads(response.body)["error"]
    assert error["code"] == code and error["message"]
    assert (await http_server_client.fetch("/healthz")).code == 200


async def test_sdk_raises_its_own_error_type_for_our_400(http_server_client: Any) -> None:
    async with sdk(http_server_client) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": ""}]
            )
    assert "user message" in str(raised.value)


class TestApiKey:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(tokens_per_second=0, ws_ping_interval=0, api_key="sekret")

    async def test_wrong_key_is_401_and_right_key_works(self, http_server_client: Any) -> None:
        async with sdk(http_server_client, api_key="wrong") as client:
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
        async with sdk(http_server_client, api_key="sekret") as client:
            completion = await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
        assert completion.choices[0].message.content == "".join(synthetic_tokens("hi")[:2])


class TestUpstreamFailure:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(tokens_per_second=0, ws_ping_interval=0, fail_after_tokens=3)

    async def test_mid_stream_failure_reaches_the_sdk_as_an_error(
        self, http_server_client: Any
    ) -> None:
        received = []
        async with sdk(http_server_client) as client:
            stream = await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            with pytest.raises(openai.APIError):
                async for chunk in stream:
                    received.extend(c.delta.content or "" for c in chunk.choices)
        assert "".join(received) == "".join(synthetic_tokens("hi")[:3])

    async def test_non_streaming_failure_is_a_502(self, http_server_client: Any) -> None:
        response = await http_server_client.fetch(
            "/v1/chat/completions",
            method="POST",
            body=b'{"messages": [{"role": "user", "content": "hi"}]}',
            raise_error=False,
        )
        assert response.code == 502
        assert json.loads(response.body)["error"]["code"] == "upstream_error"


class TestSlowWholeAnswers:
    """A non-streaming request waits for the whole answer: it is a reader, so the
    idle timeout never cuts it, and a cancelled answer is never passed off as done."""

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=20, first_token_latency=0, idle_timeout=0.2, ws_ping_interval=0
        )

    async def test_idle_timeout_does_not_cut_a_waiting_request(
        self, http_server_client: Any
    ) -> None:
        async with sdk(http_server_client) as client:
            completion = await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": "hello"}], max_tokens=40
            )
        assert completion.choices[0].message.content == "".join(synthetic_tokens("hello")[:40])
        assert completion.choices[0].finish_reason == "length"

    async def test_a_cancelled_answer_is_an_error_not_a_stop(self, http_server_client: Any) -> None:
        store = http_server_client._http_server.request_callback.settings["store"]
        body = b'{"messages": [{"role": "user", "content": "hello"}], "max_tokens": 40}'
        pending = http_server_client.fetch(
            "/v1/chat/completions", method="POST", body=body, raise_error=False
        )
        while not store._streams:
            await asyncio.sleep(0.01)
        next(iter(store._streams.values())).cancel()
        response = await pending
        assert response.code == 503
        assert json.loads(response.body)["error"]["code"] == "cancelled"


class TestEachChunkLeavesAtOnce:
    @pytest.fixture
    def app(self, step_app: Any) -> Any:
        return step_app

    async def test_every_chunk_is_delivered_before_the_next_is_produced(
        self, http_server_client: Any, step_backend: Any
    ) -> None:
        async with openai.AsyncOpenAI(
            base_url=http_server_client.get_url("/v1"),
            api_key="k",
            max_retries=0,
            default_headers={"Accept-Encoding": "gzip"},
        ) as client:
            response = await client.chat.completions.with_raw_response.create(
                model="x", messages=[{"role": "user", "content": "p"}], stream=True
            )
            assert "content-encoding" not in response.headers
            chunks = response.parse().__aiter__()
            first = await asyncio.wait_for(anext(chunks), 5)
            assert first.choices[0].delta.role == "assistant"
            for piece in ["one", " two", " three"]:
                step_backend.release(piece)
                chunk = await asyncio.wait_for(anext(chunks), 5)
                assert chunk.choices[0].delta.content == piece
            step_backend.finish()
            last = await asyncio.wait_for(anext(chunks), 5)
            assert last.choices[0].finish_reason == "stop"

    async def test_tcp_nodelay_is_set_while_streaming(
        self, http_server_client: Any, http_server: Any, step_backend: Any
    ) -> None:
        async with sdk(http_server_client) as client:
            stream = await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": "p"}], stream=True
            )
            chunks = stream.__aiter__()
            await asyncio.wait_for(anext(chunks), 5)  # headers and first chunk are out
            flags = [
                c.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                for c in http_server._connections
                if c.stream.socket is not None
            ]
            assert flags and all(flags)
            step_backend.finish()
            async for _ in chunks:
                pass


async def test_models_retrieve(http_server_client: Any) -> None:
    async with sdk(http_server_client) as client:
        model = await client.models.retrieve("twinstream-synthetic")
        assert (model.id, model.object) == ("twinstream-synthetic", "model")
        with pytest.raises(openai.NotFoundError) as raised:
            await client.models.retrieve("gpt-4o")
    assert "twinstream-synthetic" in str(raised.value)


async def test_synthetic_parameters_are_honoured_through_the_sdk(http_server_client: Any) -> None:
    full = "".join(synthetic_tokens("hello"))
    stop = full[30:34]
    async with sdk(http_server_client) as client:
        stopped = await client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hello"}], stop=stop
        )
        seeded = [
            (
                await client.chat.completions.create(
                    model="x", messages=[{"role": "user", "content": "hello"}], seed=seed
                )
            )
            .choices[0]
            .message.content
            for seed in (1, 2)
        ]
        called = await client.chat.completions.create(
            model="x",
            messages=[{"role": "user", "content": "hello"}],
            tools=[{"type": "function", "function": {"name": "lookup"}}],
            tool_choice="required",
        )
    assert stopped.choices[0].message.content == full[: full.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    assert len({seeded[0], seeded[1], full}) == 3
    assert called.choices[0].finish_reason == "tool_calls"
    assert called.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index, union-attr]


@pytest.mark.parametrize(
    ("fields", "status", "code", "named"),
    [
        ({"temperature": 7}, 400, "invalid_parameter", "temperature"),
        ({"temperature": "hot"}, 400, "invalid_parameter", "temperature"),
        ({"n": 2}, 400, "unsupported_parameter", "n"),
        ({"n": 0}, 400, "invalid_parameter", "n"),
        ({"n": -1}, 400, "invalid_parameter", "n"),
        ({"logprobs": True}, 400, "unsupported_parameter", "logprobs"),
        ({"frequency_penalty": 0.5}, 400, "unsupported_parameter", "frequency_penalty"),
        ({"unknown_knob": 1}, 400, "unsupported_parameter", "unknown_knob"),
        ({"tool_choice": "required"}, 400, "invalid_parameter", "tool_choice"),
    ],
)
async def test_nothing_is_silently_ignored(
    http_server_client: Any, fields: dict[str, Any], status: int, code: str, named: str
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], **fields}
    response = await http_server_client.fetch(
        "/v1/chat/completions", method="POST", body=json.dumps(body), raise_error=False
    )
    assert response.code == status
    error = json.loads(response.body)["error"]
    assert error["code"] == code and f"'{named}'" in error["message"]


class TestSlowStreams:
    """A slow first token: heartbeats keep proxies from cutting the stream, and a
    stream cancelled mid-answer ends with an error, never a finish."""

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=20, first_token_latency=0.5, heartbeat=0.1, ws_ping_interval=0
        )

    async def test_heartbeats_flow_while_the_first_token_is_slow(
        self, http_server_client: Any
    ) -> None:
        received: list[bytes] = []
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
        await http_server_client.fetch(
            "/v1/chat/completions",
            method="POST",
            body=json.dumps(body),
            streaming_callback=received.append,
        )
        lines = b"".join(received).decode().split("\n")
        chunks = [
            (index, json.loads(line[6:]))
            for index, line in enumerate(lines)
            if line.startswith("data: {")
        ]
        first_data = chunks[0][0]  # the role chunk, sent at once
        first_delta = next(
            i for i, c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")
        )
        assert ": heartbeat" in lines[first_data:first_delta]
        # and the SDK reads through them
        async with sdk(http_server_client) as client:
            stream = await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "".join(synthetic_tokens("hi")[:3])

    async def test_a_cancelled_stream_ends_with_an_error(self, http_server_client: Any) -> None:
        received = []
        async with sdk(http_server_client) as client:
            stream = await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            with pytest.raises(openai.APIError) as raised:
                async for chunk in stream:
                    if not received:
                        stream_id = chunk.id.removeprefix("chatcmpl-")
                        cancelled = await http_server_client.fetch(
                            f"/cancel?stream={stream_id}", method="POST", body=b""
                        )
                        assert json.loads(cancelled.body)["cancelled"] is True
                    received.append(chunk)
        assert "cancelled" in str(raised.value)
        assert all(c.choices[0].finish_reason is None for c in received if c.choices)
