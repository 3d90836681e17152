"""Property-based tests (hypothesis) against ``python -m server``: whatever a
client sends — WebSocket messages, ``/sse`` query strings and
``Last-Event-ID``, ``/v1`` bodies, raw HTTP requests — the answer is never a
5xx, a traceback or a hang, and the server still serves afterwards.

Each property has a fixed example budget (``max_examples``) and no database,
so CI time is bounded and runs are reproducible from the printed seed.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import fuzzing
from support.fuzzing import surviving_server
from support.server_process import ServerProcess

BUDGET = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SENTINEL_STREAM = "A" * 22  # a well-formed id no stream has
EVENT_TYPES = {"start", "delta", "done", "error"}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with surviving_server() as process:
        yield process


json_values = fuzzing.json_values()
ids = st.text(max_size=30) | st.just(SENTINEL_STREAM) | st.integers()
ws_messages = st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["start", "resume", "cancel", "bogus"]) | st.text(max_size=8)},
        optional={
            "prompt": st.text(max_size=200) | json_values,
            "max_tokens": st.integers(-5, 10_000) | json_values,
            "stream": ids,
            "after": st.integers(-3, 300) | json_values,
            "ref": json_values,
        },
    ).map(json.dumps),
)


class Socket:
    """One WebSocket, reopened if the server closes it (e.g. an oversized frame)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ws: websocket.WebSocket | None = None

    def get(self) -> websocket.WebSocket:
        if self.ws is None or not self.ws.connected:
            self.ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws", timeout=10)
        return self.ws

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


@pytest.fixture(scope="module")
def ws(server: ServerProcess) -> Iterator[Socket]:
    sock = Socket(server.port)
    yield sock
    sock.close()


def check_event(event: Any) -> None:
    assert isinstance(event, dict) and event.get("type") in EVENT_TYPES, event
    if event["type"] == "error":
        assert event["code"] != "internal_error", event


@BUDGET
@given(message=ws_messages | st.binary(max_size=64))
def test_websocket_messages(ws: Socket, message: str | bytes) -> None:
    sock = ws.get()
    if isinstance(message, bytes):
        sock.send_binary(message)
    else:
        sock.send(message)
    # A sentinel resume always answers stream_not_found: everything before it
    # is this message's answer, and reaching it proves there was no hang.
    sock.send(json.dumps({"type": "resume", "stream": SENTINEL_STREAM, "after": 0}))
    while True:
        event = json.loads(sock.recv())
        check_event(event)
        if event["type"] == "error" and event.get("stream") == SENTINEL_STREAM:
            break


query_names = st.sampled_from(["prompt", "max_tokens", "last_event_id", "access_token", "x"])
query_pairs = st.lists(
    st.tuples(query_names | st.text(max_size=8), st.text(max_size=80) | st.integers().map(str)),
    max_size=4,
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)


def expect_sane(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status < 500, (status, body[:300])
    if status >= 400:
        assert json.loads(body)["error"]["code"] != "internal_error"
    assert b"Traceback" not in body


@BUDGET
@given(pairs=query_pairs, raw=st.binary(max_size=40), last_event_id=st.none() | header_text)
def test_sse_query_strings_and_last_event_id(
    server: ServerProcess, pairs: list[tuple[str, str]], raw: bytes, last_event_id: str | None
) -> None:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    for query in (urlencode(pairs), quote(raw, safe="=&%+")):
        status, response_headers, body = server.request(
            "GET", f"/sse?{query}", headers=headers, timeout=10
        )
        expect_sane(status, response_headers, body)
        if status == 200:
            assert response_headers["Content-Type"].startswith("text/event-stream")


chat_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "messages": st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "system", "x"]) | json_values},
                    optional={"content": st.text(max_size=100) | json_values},
                ),
                max_size=3,
            )
            | json_values
        },
        optional={
            "stream": st.booleans() | json_values,
            "max_tokens": st.integers(-2, 5000) | json_values,
            "stream_options": json_values,
        },
    ).map(lambda v: json.dumps(v).encode()),
)


@BUDGET
@given(body=chat_bodies)
def test_v1_bodies(server: ServerProcess, body: bytes) -> None:
    status, headers, answer = server.request(
        "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}
    )
    expect_sane(status, headers, answer)


raw_requests = st.builds(
    lambda method, target, version, headers, body: (
        method + b" " + target + b" " + version + b"\r\n" + b"".join(headers) + b"\r\n" + body
    ),
    st.sampled_from([b"GET", b"POST", b"OPTIONS", b"HEAD", b"PUT"]) | st.binary(max_size=8),
    st.sampled_from([b"/healthz", b"/sse?prompt=hi", b"/v1/chat/completions", b"/ws", b"*"])
    | st.binary(max_size=40),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]) | st.binary(max_size=10),
    st.lists(
        st.sampled_from(
            [
                b"Host: 127.0.0.1\r\n",
                b"Host: evil.example\r\n",
                b"Content-Length: 5\r\n",
                b"Content-Length: 99999999999\r\n",
                b"Transfer-Encoding: chunked\r\n",
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                b"Origin: http://evil.example\r\n",
                b"Expect: 100-continue\r\n",
            ]
        )
        | st.binary(max_size=30).map(lambda b: b + b"\r\n"),
        max_size=5,
    ),
    st.binary(max_size=40),
)


@BUDGET
@given(request=raw_requests)
def test_raw_http_requests(server: ServerProcess, request: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # no more bytes: the server must answer or close
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    if answer:
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
        code = int(status_line.split()[1])
        assert code < 500, answer[:300]
        assert b"Traceback" not in answer


def test_still_serves_after_the_fuzz(server: ServerProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/sse?prompt=still+here&max_tokens=3")
        response = connection.getresponse()
        assert response.status == 200 and response.read().count(b"data: ") == 5
    finally:
        connection.close()
