"""Property-based tests (hypothesis) of the Responses API against ``python -m
server``: whatever a client sends as a ``POST /v1/responses`` body, a
``starting_after`` or a WebSocket-mode message, the answer is never a 5xx, a
traceback or a hang; errors are OpenAI-shaped (``message``, ``type``,
``param``, ``code``) and the socket stays open."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import fuzzing
from support.fuzzing import surviving_server
from support.server_process import ServerProcess

BUDGET = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ERROR_KEYS = {"message", "type", "param", "code"}
#: on a lane of its own: a fuzzed create may still be generating on the unnamed lane, where
#: the sentinel would be answered response_already_in_flight instead
SENTINEL_LANE = "sentinel-lane"
SENTINEL = json.dumps(
    {
        "type": "response.create",
        "input": "x",
        "previous_response_id": "resp_A",
        "stream_id": SENTINEL_LANE,
    }
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with surviving_server() as process:
        yield process


json_values = fuzzing.json_values(20)
content_parts = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_text", "output_text", "refusal", "input_image", "x"])},
        optional={"text": st.text(max_size=40) | json_values, "refusal": json_values},
    ),
    max_size=3,
)
items = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "developer", "assistant", "tool"])
            | json_values
        },
        optional={
            "type": st.just("message") | json_values,
            "content": st.text(max_size=60) | content_parts | json_values,
        },
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["function_call", "function_call_output", "reasoning", "item_reference"]
            )
        },
        optional={
            "call_id": st.text(max_size=10) | json_values,
            "name": st.text(max_size=10) | json_values,
            "arguments": st.text(max_size=20) | json_values,
            "output": st.text(max_size=20) | content_parts | json_values,
        },
    ),
    json_values,
)
tools = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["function", "web_search", "file_search", "mcp"]) | json_values},
        optional={"name": st.text(max_size=12) | json_values, "parameters": json_values},
    ),
    max_size=2,
)
request_fields = {
    "input": st.text(max_size=100) | st.lists(items, max_size=4) | json_values,
    "instructions": st.text(max_size=40) | json_values,
    "max_output_tokens": st.integers(-2, 5000) | json_values,
    "temperature": st.floats(-1, 3) | json_values,
    "tools": tools | json_values,
    "tool_choice": st.sampled_from(["auto", "none", "required"]) | json_values,
    "text": st.fixed_dictionaries(
        {},
        optional={
            "format": st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "json_object", "json_schema"]) | json_values},
                optional={"name": json_values, "schema": json_values},
            )
        },
    )
    | json_values,
    "previous_response_id": st.just("resp_" + "A" * 22) | st.text(max_size=30) | json_values,
    "metadata": json_values,
    "reasoning": json_values,
    "truncation": st.sampled_from(["auto", "disabled"]) | json_values,
    "conversation": json_values,
    "store": json_values,
    "user": json_values,
}
bodies = st.fixed_dictionaries(
    {"input": request_fields["input"]},
    optional={key: value for key, value in request_fields.items() if key != "input"},
)


def expect_sane(status: int, body: bytes, routed: bool = True) -> None:
    """No 5xx; errors in OpenAI's shape (``param`` too on the Responses routes;
    an unrouted path gets the server's 404, which has no ``param``)."""
    assert status < 500, (status, body[:300])
    assert b"Traceback" not in body
    if status >= 400:
        error = json.loads(body)["error"]
        assert set(error) == ERROR_KEYS if routed else set(error) >= ERROR_KEYS - {"param"}, error
        assert error["code"] != "internal_error"


@BUDGET
@given(
    body=st.one_of(
        st.binary(max_size=100),
        json_values.map(lambda v: json.dumps(v).encode()),
        bodies.map(lambda v: json.dumps(v).encode()),
    ),
    stream=st.booleans(),
)
def test_post_bodies(server: ServerProcess, body: bytes, stream: bool) -> None:
    if stream and body.startswith(b"{") and body.endswith(b"}"):
        body = body[:-1] + (b', "stream": true}' if len(body) > 2 else b'"stream": true}')
    status, headers, answer = server.request(
        "POST", "/v1/responses", body, {"Content-Type": "application/json"}
    )
    expect_sane(status, answer)
    if status == 200 and headers["Content-Type"].startswith("text/event-stream"):
        last = answer.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        assert json.loads(last[6:])["type"] in ("response.completed", "response.incomplete")


@pytest.fixture(scope="module")
def response_id(server: ServerProcess) -> str:
    status, _, body = server.request("POST", "/v1/responses", json.dumps({"input": "fuzz"}))
    assert status == 200
    return str(json.loads(body)["id"])


@BUDGET
@given(
    value=st.text(max_size=20)
    | st.integers(-5, 500).map(str)
    | st.from_regex(r"[-+ 0-9]{1,6}", fullmatch=True),
    path=st.text(max_size=30),
)
def test_retrieval_queries_and_ids(
    server: ServerProcess, response_id: str, value: str, path: str
) -> None:
    status, _, body = server.request(
        "GET", f"/v1/responses/{response_id}?stream=true&starting_after={quote(value)}"
    )
    expect_sane(status, body)
    for method, target in (
        ("GET", f"/v1/responses/{quote(path, safe='')}"),
        ("POST", f"/v1/responses/{quote(path, safe='')}/cancel"),
        (
            "GET",
            f"/v1/responses/{response_id}/input_items?limit={quote(value)}&order={quote(path)}",
        ),
    ):
        status, _, body = server.request(method, target, b"" if method == "POST" else None)
        expect_sane(status, body, routed=False)


class Socket:
    def __init__(self, port: int) -> None:
        self.port = port
        self.ws: websocket.WebSocket | None = None

    def get(self) -> websocket.WebSocket:
        if self.ws is None or not self.ws.connected:
            self.ws = websocket.create_connection(
                f"ws://127.0.0.1:{self.port}/v1/responses", timeout=10
            )
        return self.ws


@pytest.fixture(scope="module")
def ws(server: ServerProcess) -> Iterator[Socket]:
    sock = Socket(server.port)
    yield sock
    if sock.ws is not None:
        sock.ws.close()


def check_event(event: Any) -> None:
    assert isinstance(event, dict) and isinstance(event.get("type"), str), event
    if event["type"] == "error":
        assert set(event["error"]) == ERROR_KEYS and event["error"]["code"] != "internal_error"


ws_messages = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["response.create", "response.cancel"]) | st.text(max_size=8)},
        optional={
            **request_fields,
            "stream_id": st.text(max_size=12) | json_values,
            "stream": json_values,
        },
    ).map(json.dumps),
)


@BUDGET
@given(message=ws_messages | st.binary(max_size=32))
def test_websocket_messages(ws: Socket, message: str | bytes) -> None:
    sock = ws.get()
    if isinstance(message, bytes):
        sock.send_binary(message)
    else:
        sock.send(message)
    # The sentinel always answers previous_response_not_found: everything before
    # it answers this message, and reaching it proves there was no hang.
    sock.send(SENTINEL)
    while True:
        event = json.loads(sock.recv())
        check_event(event)
        if event["type"] == "error" and event["error"]["code"] == "previous_response_not_found":
            if event.get("stream_id") == SENTINEL_LANE and "resp_A'" in event["error"]["message"]:
                break
