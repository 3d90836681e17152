"""GET /ws end to end over real sockets (tornado's WebSocket client)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import pytest
import websocket
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from server.app import Settings
from server.backends.synthetic import synthetic_tokens


async def connect(http_server_client: Any, **headers: str) -> WebSocketClientConnection:
    url = http_server_client.get_url("/ws").replace("http://", "ws://")
    return await websocket_connect(HTTPRequest(url, headers=headers))


async def receive(ws: WebSocketClientConnection) -> dict[str, Any]:
    message = await ws.read_message()
    assert isinstance(message, str), f"socket closed: {ws.close_code} {ws.close_reason}"
    return json.loads(message)


async def until_end(ws: WebSocketClientConnection, stream: str | None = None) -> list[dict]:
    """Events until the terminal event of ``stream`` (or of any stream)."""
    events = []
    while True:
        event = await receive(ws)
        events.append(event)
        done = event["type"] in ("done", "error") and event["stream"] is not None
        if done and (stream is None or event["stream"] == stream):
            return events


async def resume_on_a_new_socket(http_server_client: Any, stream: str, after: int) -> list[dict]:
    """Open a new socket, ``resume`` ``stream`` after ``after``; events to its end."""
    ws = await connect(http_server_client)
    try:
        ws.write_message(json.dumps({"type": "resume", "stream": stream, "after": after}))
        return await until_end(ws, stream)
    finally:
        ws.close()


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if e["type"] == "delta")


def expected_text(prompt: str, max_tokens: int) -> str:
    return "".join(synthetic_tokens(prompt)[:max_tokens])


async def test_the_start_event_echoes_any_json_ref_as_its_last_member(
    http_server_client: Any,
) -> None:
    ref = {"id": 'quote " and \\ backslash', "n": [1, 2.5, None, True], "ünï": "çödé"}
    ws = await connect(http_server_client)
    try:
        message = {"type": "start", "prompt": "refs", "max_tokens": 1, "ref": ref}
        ws.write_message(json.dumps(message))
        text = await ws.read_message()
    finally:
        ws.close()
    assert isinstance(text, str)
    start = json.loads(text)
    assert start["type"] == "start" and start["ref"] == ref
    # byte for byte the compact JSON of the start event with ref appended
    assert list(start)[-1] == "ref"
    assert text == json.dumps(start, separators=(",", ":"), ensure_ascii=False)


async def test_start_streams_the_same_events_as_sse(http_server_client: Any) -> None:
    ws = await connect(http_server_client)
    try:
        ws.write_message(
            json.dumps(
                {"type": "start", "prompt": "Tell me a story", "max_tokens": 20, "ref": "r1"}
            )
        )
        events = await until_end(ws)
    finally:
        ws.close()
    assert events[0]["type"] == "start" and events[0]["ref"] == "r1"
    assert [e["type"] for e in events] == ["start"] + ["delta"] * 20 + ["done"]
    assert [e["seq"] for e in events] == list(range(22))
    assert text_of(events) == expected_text("Tell me a story", 20)
    sse = await http_server_client.fetch("/sse?prompt=Tell+me+a+story&max_tokens=20")
    sse_events = [
        json.loads(line[6:]) for line in sse.body.decode().splitlines() if line.startswith("data: ")
    ]
    assert text_of(sse_events) == text_of(events)
    assert [e["type"] for e in sse_events] == [e["type"] for e in events]


async def test_closed_sockets_do_not_pile_up_in_the_edge(
    http_server_client: Any, http_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WebSocket closes unseen by the HTTP server's on_close (its HTTP
    connection was detached): the edge's set of open connections must still
    let closed ones go, keeping no more closed than open (or the floor)."""
    monkeypatch.setattr(http_server, "_prune_at", 4)
    monkeypatch.setattr("server.edge.server.PRUNE_AT_LEAST", 4)
    for _ in range(20):
        ws = await connect(http_server_client)
        ws.close()
        await ws.read_message()  # None: the close handshake is over
    await asyncio.sleep(0.05)
    assert http_server.open_connections() == 0
    assert len(http_server._open) <= 4


async def test_several_streams_on_one_socket(http_server_client: Any) -> None:
    ws = await connect(http_server_client)
    try:
        for n in range(3):
            ws.write_message(
                json.dumps({"type": "start", "prompt": f"topic {n}", "max_tokens": 15, "ref": n})
            )
        by_stream: dict[str, list[dict]] = {}
        refs: dict[str, int] = {}
        ended = 0
        while ended < 3:
            event = await receive(ws)
            by_stream.setdefault(event["stream"], []).append(event)
            if event["type"] == "start":
                refs[event["stream"]] = event["ref"]
            ended += event["type"] == "done"
    finally:
        ws.close()
    assert sorted(refs.values()) == [0, 1, 2]
    for stream, events in by_stream.items():
        assert [e["seq"] for e in events] == list(range(17))
        assert text_of(events) == expected_text(f"topic {refs[stream]}", 15)


class TestResumeAndCancel:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(tokens_per_second=100, first_token_latency=0, ws_ping_interval=0)

    async def test_dropped_socket_resumes_on_a_new_one(self, http_server_client: Any) -> None:
        ws = await connect(http_server_client)
        ws.write_message(json.dumps({"type": "start", "prompt": "drop me", "max_tokens": 30}))
        first = [await receive(ws) for _ in range(6)]
        ws.close()  # mid-stream
        stream = first[0]["stream"]
        store = http_server_client._http_server.request_callback.settings["store"]
        streams_before = len(store)
        rest = await resume_on_a_new_socket(http_server_client, stream, first[-1]["seq"])
        assert len(store) == streams_before
        joined = first + rest
        assert [e["seq"] for e in joined] == list(range(32))
        assert text_of(joined) == expected_text("drop me", 30)

    async def test_resume_of_an_ended_stream_sends_only_what_is_missing(
        self, http_server_client: Any
    ) -> None:
        ws = await connect(http_server_client)
        try:
            ws.write_message(json.dumps({"type": "start", "prompt": "short", "max_tokens": 3}))
            events = await until_end(ws)
            stream = events[0]["stream"]
            ws.write_message(json.dumps({"type": "resume", "stream": stream, "after": 2}))
            assert await until_end(ws) == events[3:]
        finally:
            ws.close()

    async def test_cancel_ends_the_stream_with_cancelled(self, http_server_client: Any) -> None:
        ws = await connect(http_server_client)
        try:
            ws.write_message(json.dumps({"type": "start", "prompt": "long", "max_tokens": 4000}))
            start = await receive(ws)
            await receive(ws)
            ws.write_message(json.dumps({"type": "cancel", "stream": start["stream"]}))
            rest = await until_end(ws, start["stream"])
            assert rest[-1]["type"] == "done"
            assert rest[-1]["finish_reason"] == "cancelled"
            deltas = [e for e in rest if e["type"] == "delta"]
            assert len(deltas) < len(synthetic_tokens("long"))  # it stopped early
            # the socket still works afterwards
            ws.write_message(json.dumps({"type": "start", "prompt": "again", "max_tokens": 2}))
            assert (await until_end(ws))[-1]["finish_reason"] == "length"
        finally:
            ws.close()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json at all", "invalid_json"),
        ("[]", "invalid_message"),
        ('{"prompt": "no type"}', "invalid_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "start"}', "missing_prompt"),
        ('{"type": "start", "prompt": ""}', "missing_prompt"),
        ('{"type": "start", "prompt": "hi", "max_tokens": 0}', "invalid_max_tokens"),
        ('{"type": "start", "prompt": "hi", "max_tokens": "9"}', "invalid_max_tokens"),
        ('{"type": "resume", "stream": "AAAAAAAAAAAAAAAAAAAAAA"}', "invalid_after"),
        ('{"type": "resume", "stream": "AAAAAAAAAAAAAAAAAAAAAA", "after": 1}', "stream_not_found"),
        ('{"type": "cancel", "stream": "AAAAAAAAAAAAAAAAAAAAAA"}', "stream_not_found"),
        ('{"type": "cancel"}', "invalid_stream"),
        ('{"type": "start", "prompt": "' + "x" * 33000 + '"}', "prompt_too_long"),
        (b"\x00\x01binary", "binary_not_supported"),
    ],
)
async def test_bad_messages_get_an_error_event_and_the_socket_stays_usable(
    http_server_client: Any, message: str | bytes, code: str
) -> None:
    ws = await connect(http_server_client)
    try:
        ws.write_message(message, binary=isinstance(message, bytes))
        error = await receive(ws)
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["message"] and "Traceback" not in error["message"]
        ws.write_message(json.dumps({"type": "start", "prompt": "still here", "max_tokens": 2}))
        events = await until_end(ws)
        assert events[-1]["type"] == "done"
    finally:
        ws.close()


async def test_error_event_echoes_the_ref_of_the_bad_message(http_server_client: Any) -> None:
    ws = await connect(http_server_client)
    try:
        ws.write_message(json.dumps({"type": "start", "prompt": "", "ref": "mine"}))
        error = await receive(ws)
        assert (error["code"], error["ref"], error["stream"]) == ("missing_prompt", "mine", None)
    finally:
        ws.close()


async def test_cross_origin_pages_are_refused(http_server_client: Any) -> None:
    with pytest.raises(HTTPClientError) as refused:
        await connect(http_server_client, Origin="http://evil.example")
    assert refused.value.code == 403
    port = http_server_client.get_http_port()
    ws = await connect(http_server_client, Origin=f"http://127.0.0.1:{port}")
    ws.close()


class TestAllowedOrigins:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=0, ws_ping_interval=0, allowed_origins=("http://app.example",)
        )

    async def test_listed_origin_is_allowed(self, http_server_client: Any) -> None:
        ws = await connect(http_server_client, Origin="http://app.example")
        ws.write_message(json.dumps({"type": "start", "prompt": "hi", "max_tokens": 1}))
        assert (await until_end(ws))[-1]["type"] == "done"
        ws.close()


class TestCompression:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(tokens_per_second=0, ws_ping_interval=0, ws_compression=True)

    async def test_permessage_deflate_is_negotiated_when_enabled(
        self, http_server_client: Any
    ) -> None:
        url = http_server_client.get_url("/ws").replace("http://", "ws://")
        ws = await websocket_connect(url, compression_options={})
        try:
            extensions = ws.headers.get("Sec-WebSocket-Extensions", "")
            assert "permessage-deflate" in extensions
            ws.write_message(json.dumps({"type": "start", "prompt": "zip", "max_tokens": 5}))
            assert text_of(await until_end(ws)) == expected_text("zip", 5)
        finally:
            ws.close()


class TestDebugDrop:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(
            tokens_per_second=100, first_token_latency=0, ws_ping_interval=0, debug_drop=True
        )

    async def test_drop_cuts_the_socket_and_resume_completes(self, http_server_client: Any) -> None:
        ws = await connect(http_server_client)
        ws.write_message(json.dumps({"type": "start", "prompt": "cut me", "max_tokens": 40}))
        first = [await receive(ws) for _ in range(4)]
        stream = first[0]["stream"]
        response = await http_server_client.fetch(
            f"/debug/drop?stream={stream}", method="POST", body=b""
        )
        assert json.loads(response.body) == {"stream": stream, "dropped": 1}
        while (message := await ws.read_message()) is not None:
            first.append(json.loads(message))  # events already in flight
        rest = await resume_on_a_new_socket(http_server_client, stream, first[-1]["seq"])
        assert text_of(first + rest) == expected_text("cut me", 40)
        assert [e["seq"] for e in first + rest] == list(range(42))


class TestEachEventLeavesAtOnce:
    @pytest.fixture
    def app(self, step_app: Any) -> Any:
        return step_app

    async def test_every_event_is_delivered_before_the_next_is_produced(
        self, http_server_client: Any, step_backend: Any
    ) -> None:
        ws = await connect(http_server_client)
        try:
            ws.write_message(json.dumps({"type": "start", "prompt": "p"}))
            assert (await asyncio.wait_for(receive(ws), 5))["type"] == "start"
            for piece in ["one", " two", " three"]:
                step_backend.release(piece)
                assert (await asyncio.wait_for(receive(ws), 5))["content"] == piece
            step_backend.finish()
            assert (await asyncio.wait_for(receive(ws), 5))["type"] == "done"
        finally:
            ws.close()


@pytest.mark.parametrize(
    "message",
    [
        '{"type": "start", "prompt": "\\ud800"}',
        '{"type": "start", "prompt": "hi", "ref": "\\udfff"}',
        '{"type": "start", "prompt": "hi", "ref": NaN}',
        '{"type": "start", "prompt": "hi", "ref": 1e999}',
        '{"type": "start", "prompt": "hi", "max_tokens": Infinity}',
    ],
)
async def test_json_that_is_not_rfc_8259_is_refused_and_the_socket_lives(
    http_server_client: Any, message: str
) -> None:
    ws = await connect(http_server_client)
    try:
        ws.write_message(message)
        raw = await ws.read_message()
        assert isinstance(raw, str)
        error = json.loads(raw)  # strict JSON, as a browser would parse it
        assert (error["type"], error["code"]) == ("error", "invalid_json")
        ws.write_message(json.dumps({"type": "start", "prompt": "still here", "max_tokens": 2}))
        assert (await until_end(ws))[-1]["type"] == "done"
    finally:
        ws.close()


async def test_resume_beyond_the_log_or_after_the_end_says_so(http_server_client: Any) -> None:
    ws = await connect(http_server_client)
    try:
        ws.write_message(json.dumps({"type": "start", "prompt": "short", "max_tokens": 3}))
        events = await until_end(ws)
        stream, last = events[0]["stream"], events[-1]["seq"]
        ws.write_message(json.dumps({"type": "resume", "stream": stream, "after": last + 5}))
        ahead = await receive(ws)
        assert (ahead["stream"], ahead["code"]) == (stream, "invalid_after")
        ws.write_message(json.dumps({"type": "resume", "stream": stream, "after": last}))
        ended = await receive(ws)
        assert (ended["stream"], ended["code"]) == (stream, "stream_ended")
    finally:
        ws.close()


class TestStreamCaps:
    @pytest.fixture
    def settings(self) -> Settings:
        # Streams that start and then wait: only start events (or refusals) arrive.
        return Settings(
            tokens_per_second=5,
            first_token_latency=30,
            ws_ping_interval=0,
            max_streams_per_socket=2,
            max_streams=3,
        )

    async def test_a_socket_may_run_only_so_many_streams(self, http_server_client: Any) -> None:
        ws = await connect(http_server_client)
        try:
            for n in range(3):
                ws.write_message(json.dumps({"type": "start", "prompt": f"p{n}", "ref": n}))
            seen = [await receive(ws) for _ in range(3)]
            refused = [e for e in seen if e["type"] == "error"]
            assert len(refused) == 1
            assert (refused[0]["code"], refused[0]["ref"]) == ("too_many_streams", 2)
            assert sorted(e["ref"] for e in seen if e["type"] == "start") == [0, 1]
        finally:
            ws.close()

    async def test_the_server_runs_only_so_many_streams(self, http_server_client: Any) -> None:
        sockets = [await connect(http_server_client) for _ in range(2)]
        try:
            for n in range(3):
                sockets[n % 2].write_message(json.dumps({"type": "start", "prompt": f"p{n}"}))
            for ws in sockets:
                assert (await receive(ws))["type"] == "start"
            assert (await receive(sockets[0]))["type"] == "start"
            response = await http_server_client.fetch("/sse?prompt=one+more", raise_error=False)
            assert response.code == 503
            assert json.loads(response.body)["error"]["code"] == "too_many_streams"
        finally:
            for ws in sockets:
                ws.close()


class TestKeepalivePings:
    @pytest.fixture
    def live_settings(self) -> Settings:
        return Settings(tokens_per_second=0, ws_ping_interval=0.1)

    def test_server_pings_an_idle_socket(self, live_server: Any) -> None:
        # websocket-client shows control frames (and answers pings itself).
        ws = websocket.create_connection(
            live_server.url.replace("http://", "ws://") + "/ws", timeout=5
        )
        try:
            opcode, _ = ws.recv_data(control_frame=True)  # nothing sent: only a ping can come
            assert opcode == websocket.ABNF.OPCODE_PING
            opcode, _ = ws.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_PING  # still open, still pinging
        finally:
            ws.close()

    def test_a_socket_that_never_answers_pings_is_closed_with_1011(self, live_server: Any) -> None:
        """The keepalive: one ping, no pong for an interval, then a close frame
        1011 "keepalive ping timeout" and the TCP connection closed."""
        host, port = live_server.url.removeprefix("http://").rstrip("/").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            received = b""
            while chunk := sock.recv(4096):  # read everything, answer nothing
                received += chunk
        head, _, frames = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert frames.startswith(b"\x89\x00")  # a ping, empty (RFC 6455 5.5.2)
        close = frames[2:]
        assert close[0] == 0x88  # FIN + close, then the code and the reason
        assert close[2:4] == (1011).to_bytes(2, "big")
        assert close[4:] == b"keepalive ping timeout"


async def test_an_open_socket_keeps_its_handler_within_a_split_dict(
    http_server_client: Any, app: Any
) -> None:
    """Every WebSocket endpoint's handler lives as long as its socket: its
    instance attributes stay few enough (29) for CPython to keep them in a
    split dict whose keys the class shares, while it follows a stream."""
    paths = {"/ws": "StreamSocketHandler", "/api/chat": "UIChatSocketHandler",
             "/v1/responses": "ResponsesSocketHandler"}  # fmt: skip
    for path, kind in paths.items():
        url = http_server_client.get_url(path).replace("http://", "ws://")
        ws = await websocket_connect(url)
        if path == "/ws":  # with a stream followed and done
            ws.write_message(json.dumps({"type": "start", "prompt": "x", "max_tokens": 2}))
            await until_end(ws)
        await asyncio.sleep(0.02)
        (handler,) = [h for h in app.settings["watch"].drainable if h.request.path == path]
        assert type(handler).__name__ == kind
        assert len(vars(handler)) <= 29, sorted(vars(handler))
        ws.close()
