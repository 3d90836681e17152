"""GET /sse end to end over real sockets, decoded by an independent client (httpx-sse)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from openai._streaming import SSEDecoder as OpenAISSEDecoder
from support.server_process import ServerProcess

from server.app import Settings
from server.backends.synthetic import synthetic_tokens


def base_url(http_server_client: Any) -> str:
    return http_server_client.get_url("")


async def read_sse(
    url: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> tuple[httpx.Response, list[dict[str, Any]], list[str], list[float]]:
    """Events (decoded JSON), their ids and receive times; stop early after ``stop_after``."""
    events: list[dict[str, Any]] = []
    ids: list[str] = []
    received: list[float] = []
    async with httpx.AsyncClient(timeout=10) as client:
        async with aconnect_sse(
            client, "GET", url, params=params, headers=dict(headers or {})
        ) as source:
            response = source.response
            if response.status_code != 200:
                await response.aread()
                return response, events, ids, received
            async for sse in source.aiter_sse():
                received.append(time.time())
                events.append(json.loads(sse.data))
                ids.append(sse.id)
                if stop_after is not None and len(events) >= stop_after:
                    break
    return response, events, ids, received


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if e["type"] == "delta")


def expected_text(prompt: str, max_tokens: int) -> str:
    return "".join(synthetic_tokens(prompt)[:max_tokens])


async def test_streams_a_whole_completion(http_server_client: Any) -> None:
    response, events, ids, _ = await read_sse(
        base_url(http_server_client) + "/sse", {"prompt": "Tell me a story", "max_tokens": 20}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert [e["type"] for e in events] == ["start"] + ["delta"] * 20 + ["done"]
    stream = events[0]["stream"]
    assert [e["seq"] for e in events] == list(range(22))
    assert ids == [f"{stream}:{n}" for n in range(22)]
    assert events[0]["model"] == "twinstream-synthetic"
    assert events[-1]["finish_reason"] == "length"
    assert text_of(events) == expected_text("Tell me a story", 20)


async def test_wire_layout_retry_once_and_one_data_line(http_server_client: Any) -> None:
    response = await http_server_client.fetch("/sse?prompt=layout&max_tokens=3")
    body = response.body.decode()
    blocks = [b for b in body.split("\n\n") if b]
    assert len(blocks) == 5
    assert blocks[0].splitlines()[1] == "retry: 1000"
    assert sum("retry:" in b for b in blocks) == 1
    for block in blocks:
        lines = block.splitlines()
        assert lines[0].startswith("id: ")
        assert sum(line.startswith("data: ") for line in lines) == 1


async def test_no_gzip_even_when_asked(http_server_client: Any) -> None:
    response = await http_server_client.fetch(
        "/sse?prompt=gzip&max_tokens=5",
        headers={"Accept-Encoding": "gzip"},
        decompress_response=False,
    )
    assert "Content-Encoding" not in response.headers
    assert response.body.startswith(b"id: ")
    # ...while the app does compress other text (the trap is real).
    long_prompt = next(
        p for p in (f"gzip {n}" for n in range(1000)) if len(synthetic_tokens(p)) > 200
    )  # a reply over gzip's 1 KiB floor
    body = json.dumps({"messages": [{"role": "user", "content": long_prompt}], "max_tokens": 400})
    page = await http_server_client.fetch(
        "/v1/chat/completions",
        method="POST",
        body=body,
        headers={"Accept-Encoding": "gzip"},
        decompress_response=False,
    )
    assert page.headers.get("Content-Encoding") == "gzip"


class TestPacedStream:
    """A paced model, so that streaming (not buffering) is observable."""

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=40, first_token_latency=0, heartbeat=0.05, ws_ping_interval=0
        )

    async def test_first_event_arrives_long_before_the_last_is_produced(
        self, http_server_client: Any
    ) -> None:
        _, events, _, received = await read_sse(
            base_url(http_server_client) + "/sse", {"prompt": "pace", "max_tokens": 20}
        )
        # 20 tokens at 40/s take 0.5 s to produce; a buffered response would
        # deliver the start event only after the last token existed.
        assert received[0] < events[-1]["t"]
        assert received[1] < events[-1]["t"]
        # Every event is received after it was produced (clocks are shared).
        assert all(r >= e["t"] - 0.001 for r, e in zip(received, events))

    async def test_tcp_nodelay_is_set_on_streaming_connections(
        self, http_server_client: Any, http_server: Any
    ) -> None:
        url = base_url(http_server_client) + "/sse"
        async with httpx.AsyncClient(timeout=10) as client:
            async with aconnect_sse(client, "GET", url, params={"prompt": "nagle"}) as source:
                async for _ in source.aiter_sse():
                    break
                connections = list(http_server._connections)
                assert connections
                flags = [
                    c.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                    for c in connections
                    if c.stream.socket is not None
                ]
                assert flags and all(flags)


class TestHeartbeatWhileIdle:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=10, first_token_latency=0.4, heartbeat=0.05, ws_ping_interval=0
        )

    async def test_idle_connection_gets_comment_heartbeats(self, http_server_client: Any) -> None:
        response = await http_server_client.fetch("/sse?prompt=beat&max_tokens=2")
        body = response.body.decode()
        assert body.count(": heartbeat\n") >= 2
        decoder = OpenAISSEDecoder()
        decoded = [sse for line in body.splitlines() if (sse := decoder.decode(line))]
        assert [json.loads(sse.data)["type"] for sse in decoded] == [
            "start",
            "delta",
            "delta",
            "done",
        ]


class TestResume:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(tokens_per_second=100, first_token_latency=0, ws_ping_interval=0)

    @pytest.mark.parametrize("carrier", ["header", "query"])
    async def test_dropped_connection_resumes_with_nothing_lost_or_repeated(
        self, http_server_client: Any, carrier: str
    ) -> None:
        url = base_url(http_server_client) + "/sse"
        params = {"prompt": "resume across a drop", "max_tokens": 30}
        _, first, ids, _ = await read_sse(url, params, stop_after=6)  # then the socket closes
        store = http_server_client._http_server.request_callback.settings["store"]
        streams_before = len(store)
        last_id = ids[-1]
        if carrier == "header":
            _, rest, _, _ = await read_sse(url, params, headers={"Last-Event-ID": last_id})
        else:
            _, rest, _, _ = await read_sse(url, {**params, "last_event_id": last_id})
        assert len(store) == streams_before  # resumed, no new completion started
        joined = first + rest
        assert [e["seq"] for e in joined] == list(range(32))
        assert {e["stream"] for e in joined} == {first[0]["stream"]}
        assert text_of(joined) == expected_text("resume across a drop", 30)

    async def test_fully_delivered_stream_answers_204(self, http_server_client: Any) -> None:
        url = base_url(http_server_client) + "/sse"
        _, events, ids, _ = await read_sse(url, {"prompt": "all of it", "max_tokens": 3})
        response = await http_server_client.fetch(
            "/sse?prompt=all+of+it", headers={"Last-Event-ID": ids[-1]}
        )
        assert response.code == 204
        assert response.body == b""
        # One event short of the end still gets that last event.
        _, tail, _, _ = await read_sse(url, {"last_event_id": ids[-2]})
        assert tail == events[-1:]

    async def test_generation_continues_while_the_client_is_away(
        self, http_server_client: Any
    ) -> None:
        url = base_url(http_server_client) + "/sse"
        _, first, ids, _ = await read_sse(url, {"prompt": "away", "max_tokens": 40}, stop_after=2)
        store = http_server_client._http_server.request_callback.settings["store"]
        stream = store.get(first[0]["stream"])
        await asyncio.wait_for(stream.wait_ended(), 10)
        assert stream.events[-1]["finish_reason"] == "length"
        _, rest, _, _ = await read_sse(url, {"last_event_id": ids[-1]})
        assert text_of(first + rest) == expected_text("away", 40)

    async def test_cancel_endpoint_stops_the_stream(self, http_server_client: Any) -> None:
        url = base_url(http_server_client) + "/sse"
        _, first, ids, _ = await read_sse(
            url, {"prompt": "stop me", "max_tokens": 4000}, stop_after=2
        )
        stream_id = first[0]["stream"]
        response = await http_server_client.fetch(
            f"/cancel?stream={stream_id}", method="POST", body=b""
        )
        assert json.loads(response.body) == {"stream": stream_id, "cancelled": True}
        _, rest, _, _ = await read_sse(url, {"last_event_id": ids[-1]})
        assert rest[-1]["type"] == "done"
        assert rest[-1]["finish_reason"] == "cancelled"
        deltas = [e for e in first + rest if e["type"] == "delta"]
        assert len(deltas) < len(synthetic_tokens("stop me"))  # it stopped early
        again = await http_server_client.fetch(
            f"/cancel?stream={stream_id}", method="POST", body=b""
        )
        assert json.loads(again.body)["cancelled"] is False


async def error_of(http_server_client: Any, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = await http_server_client.fetch(path, raise_error=False, **kwargs)
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.body)
    assert set(body["error"]) == {"code", "message", "type", "param"}  # OpenAI's shape
    assert "Traceback" not in response.body.decode()
    return response.code, body["error"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/sse", 400, "missing_prompt"),
        ("/sse?prompt=", 400, "missing_prompt"),
        ("/sse?prompt=%20%20", 400, "missing_prompt"),
        ("/sse?prompt=" + "x" * 33000, 413, "prompt_too_long"),
        ("/sse?prompt=hi&max_tokens=ten", 400, "invalid_max_tokens"),
        ("/sse?prompt=hi&max_tokens=0", 400, "invalid_max_tokens"),
        ("/sse?prompt=hi&max_tokens=4097", 400, "invalid_max_tokens"),
        ("/sse?prompt=hi&max_tokens=-3", 400, "invalid_max_tokens"),
        (
            "/sse?prompt=hi&max_tokens=%C2%B2",
            400,
            "invalid_max_tokens",
        ),  # "²": isdigit() but no int
        ("/sse?prompt=hi&max_tokens=%D9%A3", 400, "invalid_max_tokens"),  # Arabic-Indic 3
        ("/sse?last_event_id=AAAAAAAAAAAAAAAAAAAAAA:%C2%B2", 400, "invalid_last_event_id"),
        ("/sse?last_event_id=garbage", 400, "invalid_last_event_id"),
        ("/sse?last_event_id=AAAAAAAAAAAAAAAAAAAAAA:3", 404, "stream_not_found"),
        ("/cancel?stream=AAAAAAAAAAAAAAAAAAAAAA", 404, "stream_not_found"),
        ("/cancel", 400, "invalid_stream"),
        ("/nowhere", 404, "not_found"),
    ],
)
async def test_bad_requests_get_a_clear_json_error(
    http_server_client: Any, path: str, status: int, code: str
) -> None:
    method = "POST" if path.startswith("/cancel") else "GET"
    got_status, error = await error_of(
        http_server_client, path, method=method, body=b"" if method == "POST" else None
    )
    assert (got_status, error["code"]) == (status, code)
    assert error["message"]
    healthy = await http_server_client.fetch("/healthz")  # and the server keeps serving
    assert healthy.code == 200


async def test_a_prompt_at_the_limit_fits_in_the_url(http_server_client: Any) -> None:
    """32 KiB of CJK text is ~96 KiB percent-encoded: over Tornado's default header limit."""
    prompt = "漢" * (32 * 1024 // 3)
    response = await http_server_client.fetch(
        "/sse?max_tokens=2&prompt=" + urllib.parse.quote(prompt)
    )
    assert response.code == 200
    assert response.body.decode().count("data: ") == 4
    status, error = await error_of(
        http_server_client, "/sse?prompt=" + urllib.parse.quote("漢" * 11000)
    )
    assert (status, error["code"]) == (413, "prompt_too_long")


async def test_resume_ahead_of_an_ended_stream_is_a_400(http_server_client: Any) -> None:
    _, _, ids, _ = await read_sse(
        base_url(http_server_client) + "/sse", {"prompt": "end", "max_tokens": 2}
    )
    stream = ids[0].split(":")[0]
    status, error = await error_of(http_server_client, f"/sse?last_event_id={stream}:99")
    assert (status, error["code"]) == (400, "invalid_last_event_id")


class TestNoHeartbeat:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=10, first_token_latency=0.3, heartbeat=0, ws_ping_interval=0
        )

    async def test_heartbeat_zero_means_none(self, http_server_client: Any) -> None:
        response = await http_server_client.fetch("/sse?prompt=quiet&max_tokens=2")
        body = response.body.decode()
        assert ":" not in [line[:1] for line in body.splitlines()]
        assert body.count("data: ") == 4


async def test_malformed_last_event_id_header(http_server_client: Any) -> None:
    status, error = await error_of(
        http_server_client, "/sse?prompt=hi", headers={"Last-Event-ID": "S:not-a-number"}
    )
    assert (status, error["code"]) == (400, "invalid_last_event_id")


async def test_wrong_method_is_a_json_405(http_server_client: Any) -> None:
    status, error = await error_of(http_server_client, "/sse?prompt=hi", method="DELETE")
    assert (status, error["code"]) == (405, "method_not_allowed")


async def test_invalid_utf8_query_is_a_400(http_server_client: Any) -> None:
    status, error = await error_of(http_server_client, "/sse?prompt=%ff%fe")
    assert status == 400


class TestDebugDrop:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=100, first_token_latency=0, ws_ping_interval=0, debug_drop=True
        )

    async def test_drop_cuts_the_response_and_last_event_id_resumes(
        self, http_server_client: Any
    ) -> None:
        url = base_url(http_server_client) + "/sse"
        params = {"prompt": "cut me", "max_tokens": 40}
        events: list[dict[str, Any]] = []
        ids: list[str] = []
        dropped = None
        async with httpx.AsyncClient(timeout=10) as client:
            async with aconnect_sse(client, "GET", url, params=params) as source:
                try:
                    async for sse in source.aiter_sse():
                        events.append(json.loads(sse.data))
                        ids.append(sse.id)
                        if len(events) == 3:
                            dropped = await http_server_client.fetch(
                                f"/debug/drop?stream={events[0]['stream']}",
                                method="POST",
                                body=b"",
                            )
                except httpx.RemoteProtocolError:
                    pass  # the server cut the chunked response mid-way, as intended
        assert dropped is not None and json.loads(dropped.body)["dropped"] == 1
        assert events[-1]["type"] != "done"
        _, rest, _, _ = await read_sse(url, params, headers={"Last-Event-ID": ids[-1]})
        assert text_of(events + rest) == expected_text("cut me", 40)

    async def test_drop_of_an_unknown_stream_is_404(self, http_server_client: Any) -> None:
        status, error = await error_of(
            http_server_client,
            "/debug/drop?stream=AAAAAAAAAAAAAAAAAAAAAA",
            method="POST",
            body=b"",
        )
        assert (status, error["code"]) == (404, "stream_not_found")


class TestDebugDropDisabled:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(tokens_per_second=0, ws_ping_interval=0, debug_drop=False)

    async def test_no_drop_endpoint(self, http_server_client: Any) -> None:
        status, error = await error_of(
            http_server_client,
            "/debug/drop?stream=AAAAAAAAAAAAAAAAAAAAAA",
            method="POST",
            body=b"",
        )
        assert (status, error["code"]) == (404, "not_found")


class TestEachEventLeavesAtOnce:
    """No buffering anywhere (gzip, ETag, batching): the test lets the model
    produce one piece at a time and must receive each before the next exists."""

    @pytest.fixture
    def app(self, step_app: Any) -> Any:
        return step_app

    async def test_every_event_is_delivered_before_the_next_is_produced(
        self, http_server_client: Any, step_backend: Any
    ) -> None:
        url = base_url(http_server_client) + "/sse"
        headers = {"Accept-Encoding": "gzip"}
        async with httpx.AsyncClient(timeout=10) as client:
            async with aconnect_sse(
                client, "GET", url, params={"prompt": "p"}, headers=headers
            ) as source:
                assert "content-encoding" not in source.response.headers
                events = source.aiter_sse()
                start = json.loads((await asyncio.wait_for(anext(events), 5)).data)
                assert start["type"] == "start"  # before the model produced anything
                for piece in ["one", " two", " three", " four"]:
                    step_backend.release(piece)
                    delta = json.loads((await asyncio.wait_for(anext(events), 5)).data)
                    assert delta["content"] == piece
                step_backend.finish()
                done = json.loads((await asyncio.wait_for(anext(events), 5)).data)
                assert done["type"] == "done"


def _first_read(sock: socket.socket, request: bytes) -> tuple[bytes, float]:
    """What one ``recv`` returns once the answer to ``request`` starts to
    arrive, and how long that took."""
    began = time.monotonic()
    sock.sendall(request)
    return sock.recv(65536), time.monotonic() - began


def test_a_new_stream_s_head_and_start_event_leave_in_one_write() -> None:
    # The server is another process, so the client wakes as soon as the first
    # bytes arrive: written apart, the head would be read alone.
    with ServerProcess("--tokens-per-second", "10", "--first-token-latency", "2") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            request = b"GET /sse?prompt=together&max_tokens=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            data, _ = _first_read(sock, request)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"text/event-stream" in head
    # the first chunk of the body: the start event, whole, and nothing more
    # (the first token is 2 s away)
    size, _, chunk = body.partition(b"\r\n")
    assert len(chunk) == int(size, 16) + 2 and chunk.endswith(b"\n\n\r\n")
    assert b'"type":"start"' in chunk and b'"type":"delta"' not in chunk


def test_a_resume_of_a_live_stream_gets_its_head_before_the_next_event() -> None:
    with ServerProcess("--tokens-per-second", "10", "--first-token-latency", "3") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as first:
            data, _ = _first_read(
                first, b"GET /sse?prompt=later HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            while b"\n\n" not in data:  # up to the end of the start event
                data += first.recv(65536)
        stream = json.loads(data.split(b"data: ", 1)[1].split(b"\n", 1)[0])["stream"]
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as second:
            request = (
                f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: {stream}:0\r\n\r\n"
            ).encode()
            data, waited = _first_read(second, request)
    # the head alone, at once: the next event (the first token) is seconds away
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\n")
    assert waited < 2.0


class TestRefusedAfterTheResponseWasPrepared:
    """The response is made an event stream before the stream is created; a
    stream the server refuses still gets a JSON error, and the connection is
    not counted as relaying."""

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=10, first_token_latency=5, ws_ping_interval=0, max_streams=1
        )

    async def test_the_refusal_is_a_json_503(self, http_server_client: Any, app: Any) -> None:
        registry = app.settings["metrics"].registry
        url = base_url(http_server_client) + "/sse"
        async with httpx.AsyncClient(timeout=10) as client:
            async with aconnect_sse(client, "GET", url, params={"prompt": "one"}) as source:
                async for sse in source.aiter_sse():
                    assert json.loads(sse.data)["type"] == "start"
                    break
                refused = await client.get(url, params={"prompt": "two"})
                assert refused.status_code == 503
                assert refused.headers["content-type"].startswith("application/json")
                assert refused.json()["error"]["code"] == "too_many_streams"
                open_now = registry.get_sample_value(
                    "twinstream_open_connections", {"transport": "sse"}
                )
                assert open_now == 1.0  # the first stream's connection only
