"""``/api/chat`` over real sockets, byte-level: the SSE response's headers and body,
204 for nothing to resume, stop, bad input (4xx JSON, a hypothesis fuzz with 0
server errors), CORS, the mount-path setting, heartbeats, the same text as
``/v1/chat/completions``, and the WebSocket transport's frames (several chats on
one socket, malformed frames, drain with 1012 on a shared store)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import websocket  # websocket-client, the Python clients' library
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import raw_clients
from support.redisutil import RedisServer
from support.server_process import ServerProcess
from tornado.websocket import WebSocketClientConnection, websocket_connect

from benchmarks import rawwire
from server.backends.synthetic import synthetic_tokens

FRONT = "http://front.example"
ARGS = (
    "--tokens-per-second", "200",
    "--first-token-latency", "0",
    "--chat-resume-grace", "0.3",
    "--allowed-origin", FRONT,
    "--log-level", "warning",
)  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(*ARGS) as running:
        yield running


def user(text: str) -> dict[str, Any]:
    return {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}


def chat_body(chat_id: str, text: str = "Hello", **params: Any) -> dict[str, Any]:
    return {"id": chat_id, "messages": [user(text)], "trigger": "submit-message", **params}


def request(
    server: ServerProcess, method: str, path: str, body: Any = None, raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def chunks_of(body: bytes) -> list[dict[str, Any]]:
    return raw_clients.sse_events(body)


def test_post_streams_ui_message_chunks_with_the_sdk_headers(server: ServerProcess) -> None:
    status, headers, body = request(server, "POST", "/api/chat", chat_body("h1", max_tokens=5))
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Vercel-Ai-Ui-Message-Stream"] == "v1"
    assert headers["X-Accel-Buffering"] == "no"
    text = body.decode()
    assert text.endswith("data: [DONE]\n\n") and text.count("[DONE]") == 1
    assert "\nid:" not in text and not text.startswith("id:") and "event:" not in text
    chunks = chunks_of(body)
    assert [c["type"] for c in chunks][-3:] == ["text-end", "finish-step", "finish"]
    deltas = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert deltas == "".join(synthetic_tokens("Hello")[:5])
    assert chunks[-1]["messageMetadata"]["usage"]["completion_tokens"] == 5


def test_nothing_to_resume_is_204(server: ServerProcess) -> None:
    assert request(server, "GET", "/api/chat/never-started/stream")[0] == 204
    request(server, "POST", "/api/chat", chat_body("ended", max_tokens=3))
    status, _, body = request(server, "GET", "/api/chat/ended/stream")
    assert status == 200 and body.endswith(b"data: [DONE]\n\n")  # within the grace
    time.sleep(0.4)
    assert request(server, "GET", "/api/chat/ended/stream")[0] == 204  # after it


async def test_resume_replays_from_the_start_then_live(server: ServerProcess) -> None:
    connection = await raw_clients.post_json(
        server.port, "/api/chat", chat_body("live", "A long one", max_tokens=400)
    )
    await connection.read_until(b'"text-delta"', 10)
    connection.close()  # a drop: the answer goes on
    status, _, body = await asyncio.to_thread(request, server, "GET", "/api/chat/live/stream")
    assert status == 200
    chunks = chunks_of(body)
    assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "finish"
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == "".join(synthetic_tokens("A long one")[:400])


async def test_stop_ends_the_answer_with_abort_and_done(server: ServerProcess) -> None:
    connection = await raw_clients.post_json(
        server.port, "/api/chat", chat_body("to-stop", max_tokens=2000)
    )
    await connection.read_until(b'"text-delta"', 10)
    status, _, answer = await asyncio.to_thread(request, server, "POST", "/api/chat/to-stop/stop")
    assert status == 200 and json.loads(answer) == {"id": "to-stop", "stopped": True}
    data = await connection.read_to_end(10)
    (response,) = rawwire.parse_http_responses(data)
    body = response.body
    assert body.endswith(b'data: {"type":"abort","reason":"stopped"}\n\ndata: [DONE]\n\n')
    chunks = chunks_of(body)
    assert chunks[-1] == {"type": "abort", "reason": "stopped"}
    assert "finish" not in [c["type"] for c in chunks]
    assert request(server, "GET", "/api/chat/to-stop/stream")[0] == 204
    again = request(server, "POST", "/api/chat/to-stop/stop")
    assert json.loads(again[2]) == {"id": "to-stop", "stopped": False}


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"not json", 400, "invalid_json"),
        (b"[]", 400, "invalid_body"),
        (json.dumps({"id": "c"}).encode(), 400, "invalid_messages"),
        (json.dumps(chat_body("c") | {"messages": [{"role": "user", "parts": [
            {"type": "file", "url": "data:,x", "mediaType": "image/png"}]}]}).encode(),
         400, "unsupported_part"),
        (json.dumps(chat_body("c", temperature="hot")).encode(), 400, "invalid_parameter"),
        (json.dumps(chat_body("c", logprobs=True)).encode(), 400, "unsupported_parameter"),
        (json.dumps(chat_body("c", "x" * 300_000)).encode(), 413, "body_too_large"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx(
    server: ServerProcess, raw: bytes, status: int, code: str
) -> None:
    got, headers, body = request(server, "POST", "/api/chat", raw=raw)
    assert got == status
    assert json.loads(body)["error"]["code"] == code


def test_bad_chat_ids_in_paths(server: ServerProcess) -> None:
    status, _, body = request(server, "GET", "/api/chat/%7Bx%7D/stream")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_chat_id"


def test_a_chat_id_in_a_path_is_decoded_once(server: ServerProcess) -> None:
    """``a%2541`` is the id ``a%41`` (not a chat id: '%' is not allowed), never ``aA``."""
    for method, path in (("GET", "/api/chat/a%2541/stream"), ("POST", "/api/chat/a%2541/stop")):
        status, _, body = request(server, method, path, raw=b"{}" if method == "POST" else None)
        assert status == 400 and json.loads(body)["error"]["code"] == "invalid_chat_id", path


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)  # fmt: skip
_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "id": st.just("fuzz") | _JSON,
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "x"]),
                 "parts": st.lists(st.fixed_dictionaries(
                     {"type": st.sampled_from(["text", "file", "tool-f", "reasoning"])},
                     optional={"text": _JSON, "state": _JSON, "toolCallId": _JSON}), max_size=3)}
            ), max_size=3) | _JSON,
        "trigger": _JSON,
        "max_tokens": _JSON,
        "tools": _JSON,
        "stop": _JSON,
    },
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_BODIES)
def test_fuzzed_bodies_never_get_a_server_error(server: ServerProcess, body: dict) -> None:
    body = {**body, "max_tokens": 1} if "messages" in body else body
    status, _, answer = request(server, "POST", "/api/chat", body)
    assert status < 500, answer
    if status != 200:
        assert json.loads(answer)["error"]["code"]


def test_cors_for_a_front_end_on_another_origin(server: ServerProcess) -> None:
    status, headers, _ = request(
        server, "OPTIONS", "/api/chat",
        headers={"Origin": FRONT, "Access-Control-Request-Method": "POST"},
    )  # fmt: skip
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == FRONT
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = request(
        server, "POST", "/api/chat", chat_body("cors", max_tokens=2), headers={"Origin": FRONT}
    )
    assert status == 200 and headers["Access-Control-Allow-Origin"] == FRONT
    stop = request(server, "OPTIONS", "/api/chat/cors/stop",
                   headers={"Origin": FRONT, "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert "POST" in stop[1]["Access-Control-Allow-Methods"]
    other = request(server, "POST", "/api/chat", chat_body("x"), headers={"Origin": "http://evil"})
    assert other[0] == 403


def test_mounted_elsewhere_with_heartbeats() -> None:
    args = ("--chat-path", "/chat", "--heartbeat", "0.05", "--first-token-latency", "0.4",
            "--log-level", "warning")  # fmt: skip
    with ServerProcess(*args) as other:
        status, _, body = request(other, "POST", "/chat", chat_body("m", max_tokens=1))
        assert status == 200
        assert b"\n: heartbeat\n" in b"\n" + body or body.startswith(b": heartbeat")
        assert chunks_of(body)[-1]["type"] == "finish"
        assert request(other, "POST", "/api/chat", chat_body("m"))[0] == 404


def test_the_same_text_as_chat_completions(server: ServerProcess) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip
    ui_messages = [
        user("Weather via get_weather?"),
        {"id": "a1", "role": "assistant", "parts": [
            {"type": "step-start"},
            {"type": "tool-get_weather", "toolCallId": "c1", "state": "output-available",
             "input": {"city": "Paris"}, "output": {"sky": "clear"}}]},
    ]  # fmt: skip
    openai_messages = [
        {"role": "user", "content": "Weather via get_weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"sky":"clear"}'},
    ]  # fmt: skip
    params = {"max_tokens": 30, "seed": 7, "temperature": 0.3, "tools": [tool]}
    _, _, body = request(
        server, "POST", "/api/chat", {"id": "same", "messages": ui_messages, **params}
    )
    ui_text = "".join(c["delta"] for c in chunks_of(body) if c["type"] == "text-delta")
    _, _, answer = request(
        server, "POST", "/v1/chat/completions", {"messages": openai_messages, **params}
    )
    assert ui_text and ui_text == json.loads(answer)["choices"][0]["message"]["content"]
    assert chunks_of(body)[0]["messageId"] == "a1"  # the answer continues that message


# --- the WebSocket transport -----------------------------------------------------------


async def frames_until(ws: WebSocketClientConnection, done: Any, limit: int = 10_000) -> list:
    out = []
    for _ in range(limit):
        text = await asyncio.wait_for(ws.read_message(), 10)
        assert text is not None, "the socket closed"
        out.append(json.loads(text))
        if done(out):
            return out
    raise AssertionError("too many frames")


def send_frame(request_id: str, chat_id: str, text: str, **body: Any) -> str:
    return json.dumps({"type": "send", "requestId": request_id, "id": chat_id,
                       "trigger": "submit-message", "messages": [user(text)], "headers": {},
                       "body": body})  # fmt: skip


async def test_several_chats_on_one_socket_and_malformed_frames(server: ServerProcess) -> None:
    ws = await websocket_connect(server.url.replace("http", "ws") + "/api/chat")
    for name in ("one", "two", "three"):
        await ws.write_message(send_frame(f"r-{name}", f"ws-{name}", name, max_tokens=6))
    await ws.write_message("not json")
    await ws.write_message(json.dumps({"type": "send", "requestId": "bad", "id": "x"}))
    await ws.write_message(json.dumps({"type": "resume", "requestId": "gone", "id": "ws-never"}))
    frames = await frames_until(ws, lambda f: sum(x["type"] == "end" for x in f) == 3)
    errors = [f for f in frames if f["type"] == "error"]
    assert {e["requestId"] for e in errors} == {"", "bad"}
    assert {"type": "no-active", "requestId": "gone"} in frames
    for name in ("one", "two", "three"):
        mine = [f for f in frames if f["requestId"] == f"r-{name}"]
        assert mine[0] == {"type": "start", "requestId": f"r-{name}"}
        assert mine[-1] == {"type": "end", "requestId": f"r-{name}"}
        chunks = mine[1:-1]
        assert [c["sequence"] for c in chunks] == list(range(len(chunks)))
        text = "".join(c["chunk"].get("delta", "") for c in chunks)
        assert text == "".join(synthetic_tokens(name)[:6])
    # still open: a resume of an ended answer (within the grace) replays it
    await ws.write_message(json.dumps({"type": "resume", "requestId": "again", "id": "ws-one",
                                       "lastSequence": 3}))  # fmt: skip
    replay = await frames_until(ws, lambda f: f[-1]["type"] == "end")
    assert replay[1]["sequence"] == 4
    ws.close()


async def test_abort_stops_the_answer(server: ServerProcess) -> None:
    ws = await websocket_connect(server.url.replace("http", "ws") + "/api/chat")
    await ws.write_message(send_frame("r1", "ws-abort", "stop me", max_tokens=2000))
    await frames_until(ws, lambda f: len(f) > 5)
    await ws.write_message(json.dumps({"type": "abort", "requestId": "r1"}))
    await asyncio.sleep(0.2)
    assert request(server, "GET", "/api/chat/ws-abort/stream")[0] == 204
    ws.close()


async def test_drain_closes_1012_and_the_answer_resumes_elsewhere() -> None:
    redis = RedisServer().start()
    try:
        with (
            ServerProcess("--store", redis.url, *ARGS[:-2]) as a,
            ServerProcess("--store", redis.url, *ARGS[:-2]) as b,
        ):
            ws = await websocket_connect(a.url.replace("http", "ws") + "/api/chat")
            await ws.write_message(send_frame("r1", "drained", "drain", max_tokens=300))
            await frames_until(ws, lambda f: len(f) > 3)
            sse = await raw_clients.post_json(
                a.port, "/api/chat", chat_body("drained-sse", "drain", max_tokens=300)
            )
            await sse.read_until(b'"text-delta"', 10)
            assert a.process is not None
            a.process.send_signal(signal.SIGTERM)
            while await asyncio.wait_for(ws.read_message(), 10) is not None:
                pass
            assert ws.close_code == 1012
            # SSE: cut (no [DONE], an unfinished chunked body): the SDK sees a disconnect
            (cut,) = rawwire.parse_http_responses(await sse.read_to_end(10))
            assert not cut.complete and b"[DONE]" not in cut.body
            status, _, body = await asyncio.to_thread(
                request, b, "GET", "/api/chat/drained-sse/stream"
            )
            assert status == 200 and body.endswith(b"data: [DONE]\n\n")
            text = "".join(c.get("delta", "") for c in chunks_of(body))
            assert text == "".join(synthetic_tokens("drain")[:300])
            status, _, body = await asyncio.to_thread(request, b, "GET", "/api/chat/drained/stream")
            assert status == 200
            text = "".join(c.get("delta", "") for c in chunks_of(body))
            assert text == "".join(synthetic_tokens("drain")[:300])
    finally:
        redis.close()


async def test_with_an_api_key_both_transports() -> None:
    with ServerProcess("--api-key", "k3y", *ARGS) as keyed:
        assert request(keyed, "POST", "/api/chat", chat_body("k"))[0] == 401
        bearer = {"Authorization": "Bearer k3y"}
        status, _, body = request(keyed, "POST", "/api/chat", chat_body("k", max_tokens=2),
                                  headers=bearer)  # fmt: skip
        assert status == 200 and chunks_of(body)[-1]["type"] == "finish"
        _, _, token = request(keyed, "POST", "/auth/token", {}, headers=bearer)
        url = keyed.url.replace("http", "ws") + "/api/chat?access_token="
        ws = await websocket_connect(url + json.loads(token)["token"])
        await ws.write_message(send_frame("r", "k", "keyed", max_tokens=2))
        frames = await frames_until(ws, lambda f: f[-1]["type"] == "end")
        assert frames[0] == {"type": "start", "requestId": "r"}
        ws.close()


_FRAMES = st.fixed_dictionaries(
    {"type": st.sampled_from(["send", "resume", "abort", "other"]) | _JSON},
    optional={
        "requestId": st.just("fz") | _JSON,
        "id": st.just("fuzz-ws") | _JSON,
        "trigger": st.just("submit-message") | _JSON,
        "messages": st.just([user("fuzz")]) | _JSON,
        "body": st.just({"max_tokens": 1}) | _JSON,
        "lastSequence": st.integers(-2, 3) | _JSON,
    },
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_FRAMES, min_size=1, max_size=4))
def test_fuzzed_frames_get_answers_never_a_server_error(
    server: ServerProcess, frames: list
) -> None:
    """Every frame is answered by the protocol's frames, each with a string
    requestId, never an internal error; the socket stays open."""
    ws = websocket.create_connection(server.url.replace("http", "ws") + "/api/chat", timeout=10)
    try:
        for frame in frames:
            ws.send(json.dumps(frame))
        ws.send(json.dumps({"type": "resume", "requestId": "last", "id": "fuzz-never"}))
        while True:
            answer = json.loads(ws.recv())
            assert isinstance(answer["requestId"], str)
            assert answer["type"] in ("start", "chunk", "end", "error", "no-active"), answer
            assert "internal_error" not in answer.get("errorText", "")
            if answer == {"type": "no-active", "requestId": "last"}:
                break
    finally:
        ws.close()


def test_a_plain_get_or_another_method_is_a_json_error(server: ServerProcess) -> None:
    status, _, body = request(server, "GET", "/api/chat")
    assert status == 400 and json.loads(body)["error"]["code"] == "websocket_required"
    status, headers, body = request(server, "PUT", "/api/chat", {})
    assert status == 405 and json.loads(body)["error"]["code"] == "method_not_allowed"
    assert headers["Allow"] == "GET, POST"
