"""Routing on the method and the handshake (server/handlers/routing.py), over raw
sockets to a real server: each WebSocket path answers a request that is not a
WebSocket handshake with a JSON error (never Tornado's HTML or plain text), and
``POST /v1/responses`` is the HTTP API whatever its ``Upgrade`` header."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import raw_clients

from benchmarks import rawwire

UPGRADE = (("Upgrade", "websocket"), ("Connection", "Upgrade"))


async def ask(
    port: int, method: str, path: str, headers: tuple[tuple[str, str], ...] = (), body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection (closed after): status, headers, body."""
    payload = b"" if body is None else json.dumps(body).encode()
    sent = [*headers, ("Content-Length", str(len(payload)))]
    if not any(name == "Connection" for name, _ in headers):
        sent.append(("Connection", "close"))
    if body is not None:
        sent.append(("Content-Type", "application/json"))
    connection = await raw_clients.RawConnection.open(port)
    head = rawwire.http_request(method, path, raw_clients.HOST, port, sent)
    await connection.send(head + payload)
    await connection.read_until(rawwire.HEAD_END, 10)
    end = rawwire.head_end(bytes(connection.data))
    answer = rawwire.parse_response_head(bytes(connection.data[: end - len(rawwire.HEAD_END)]))
    length = int(answer.headers.get("content-length", "0"))
    while len(connection.data) < end + length:
        await connection.read_some(10)
    connection.close()
    return answer.status, answer.headers, bytes(connection.data[end : end + length])


@pytest.fixture
def port(http_server_client: Any, http_server_port: tuple[object, int]) -> int:
    return http_server_port[1]


@pytest.mark.parametrize("path", ["/ws", "/api/chat", "/v1/responses"])
@pytest.mark.parametrize(
    "headers",
    [(), (("Upgrade", "websocket"),), (("Connection", "Upgrade"),)],
    ids=["plain", "upgrade-without-connection", "connection-without-upgrade"],
)
async def test_a_get_that_is_no_handshake_is_a_json_400(
    port: int, path: str, headers: tuple[tuple[str, str], ...]
) -> None:
    status, answer, body = await ask(port, "GET", path, headers)
    assert status == 400
    assert answer["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == "websocket_required"
    assert path in error["message"] and "Upgrade: websocket" in error["message"]
    if path == "/v1/responses":  # the Responses API's error shape
        assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/ws", "GET"),
        ("PUT", "/ws", "GET"),
        ("DELETE", "/api/chat", "GET, POST"),
        ("PUT", "/api/chat", "GET, POST"),
    ],
)
@pytest.mark.parametrize("headers", [(), UPGRADE], ids=["plain", "with-upgrade"])
async def test_another_method_is_a_json_405_with_allow(
    port: int, method: str, path: str, allow: str, headers: tuple[tuple[str, str], ...]
) -> None:
    status, answer, body = await ask(port, method, path, headers)
    assert status == 405
    assert answer["allow"] == allow
    assert answer["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


async def test_a_post_with_upgrade_is_the_http_api(port: int) -> None:
    """Review item 9: a POST /v1/responses with ``Upgrade: websocket`` went to the
    WebSocket handler (Tornado's HTML 405)."""
    create = {"model": "any", "input": "over http", "max_output_tokens": 3}
    status, answer, body = await ask(port, "POST", "/v1/responses", UPGRADE, create)
    assert status == 200, body
    assert answer["content-type"].startswith("application/json")
    assert json.loads(body)["object"] == "response"
    chat = {"id": "c", "messages": [{"id": "u", "role": "user", "parts": [{"type": "text",
            "text": "hi"}]}], "max_tokens": 2}  # fmt: skip
    status, answer, body = await ask(
        port, "POST", "/api/chat", (*UPGRADE, ("Connection", "close")), chat
    )
    assert status == 200 and answer["content-type"].startswith("text/event-stream")
