"""The edge as a client meets it, against ``python -m server`` on loopback:
keys on every endpoint, Host and Origin, bodies refused unread, JSON errors
for malformed headers, OPTIONS, CORS, the start rate limit, trusted proxies."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from support.server_process import ServerProcess, error_code

KEY = "k-7c1e0d2f9a"
WRONG = "k-wrong"
CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})


@pytest.fixture(scope="module")
def keyed() -> Iterator[ServerProcess]:
    with ServerProcess(
        "--tokens-per-second", "0", "--debug", env={"TWINSTREAM_API_KEY": KEY}
    ) as server:
        yield server


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def start_stream(server: ServerProcess) -> str:
    status, _, body = server.request("GET", "/sse?prompt=hi&max_tokens=2", headers=bearer(KEY))
    assert status == 200
    return str(json.loads(body.split(b"data: ", 1)[1].split(b"\n", 1)[0])["stream"])


ENDPOINTS = [
    ("GET", "/sse?prompt=hi&max_tokens=2", None, 200),
    ("POST", "/v1/chat/completions", CHAT, 200),
    ("GET", "/v1/models", None, 200),
    ("POST", "/cancel?stream={stream}", "", 200),
    ("POST", "/debug/drop?stream={stream}", "", 200),
    ("GET", "/metrics", None, 200),
]


@pytest.mark.parametrize("method, path, body, ok", ENDPOINTS)
def test_each_endpoint_refuses_a_missing_or_wrong_key(
    keyed: ServerProcess, method: str, path: str, body: str | None, ok: int
) -> None:
    path = path.format(stream=start_stream(keyed))
    headers = {"Content-Type": "application/json"}
    for credentials in ({}, bearer(WRONG), bearer(""), {"Authorization": KEY}):
        status, answer_headers, answer = keyed.request(
            method, path, body, {**headers, **credentials}
        )
        assert (status, error_code(answer)) == (401, "invalid_api_key"), credentials
        assert answer_headers["WWW-Authenticate"].startswith("Bearer")
    status, _, answer = keyed.request(method, path, body, {**headers, **bearer(KEY)})
    assert status == ok, answer


def test_a_key_in_the_url_is_not_accepted(keyed: ServerProcess) -> None:
    status, _, body = keyed.request("GET", f"/sse?prompt=hi&access_token={KEY}")
    assert (status, error_code(body)) == (401, "invalid_api_key")


def test_a_token_from_auth_token_opens_sse_and_ws(keyed: ServerProcess) -> None:
    status, headers, body = keyed.request("POST", "/auth/token", "", bearer(WRONG))
    assert (status, error_code(body)) == (401, "invalid_api_key")
    status, headers, body = keyed.request("POST", "/auth/token", "", bearer(KEY))
    assert status == 200 and headers["Cache-Control"] == "no-store"
    grant = json.loads(body)
    token = grant["token"]
    assert grant["expires_in"] == 600 and KEY not in token

    status, _, body = keyed.request("GET", f"/sse?prompt=hi&max_tokens=2&access_token={token}")
    assert status == 200 and body.count(b"data: ") == 4
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    status, _, body = keyed.request("GET", f"/sse?prompt=hi&access_token={tampered}")
    assert status == 401

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{keyed.port}/ws?access_token={token}", timeout=10
    )
    try:
        ws.send(json.dumps({"type": "start", "prompt": "hi", "max_tokens": 2}))
        types = [json.loads(ws.recv())["type"] for _ in range(4)]
        assert types == ["start", "delta", "delta", "done"]
    finally:
        ws.close()


def test_ws_refuses_a_missing_or_wrong_key_and_accepts_the_right_one(
    keyed: ServerProcess,
) -> None:
    url = f"ws://127.0.0.1:{keyed.port}/ws"
    for header in ([], [f"Authorization: Bearer {WRONG}"]):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, header=header, timeout=10)
        assert refused.value.status_code == 401
        assert error_code(refused.value.resp_body or b"") == "invalid_api_key"
    ws = websocket.create_connection(url, header=[f"Authorization: Bearer {KEY}"], timeout=10)
    try:
        ws.send(json.dumps({"type": "start", "prompt": "hi", "max_tokens": 1}))
        assert json.loads(ws.recv())["type"] == "start"
    finally:
        ws.close()


def test_public_paths_need_no_key(keyed: ServerProcess) -> None:
    for path in ("/", "/healthz", "/static/app.js"):
        status, _, _ = keyed.request("GET", path)
        assert status == 200, path
    status, _, body = keyed.request("GET", "/nonexistent")
    assert (status, error_code(body)) == (401, "invalid_api_key")  # endpoints are not listed


@pytest.fixture(scope="module")
def open_server() -> Iterator[ServerProcess]:
    with ServerProcess("--tokens-per-second", "0", "--streams-per-minute", "0") as server:
        yield server


def test_a_rebinding_host_is_refused(open_server: ServerProcess) -> None:
    port = open_server.port
    for path in ("/healthz", "/sse?prompt=hi", "/"):
        status, _, body = open_server.request("GET", path, headers={"Host": f"evil.example:{port}"})
        assert (status, error_code(body)) == (421, "host_not_allowed"), path
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"ws://127.0.0.1:{port}/ws",
            host=f"evil.example:{port}",
            origin=f"http://evil.example:{port}",
            timeout=10,
        )
    assert refused.value.status_code == 421
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        status, _, _ = open_server.request("GET", "/healthz", headers={"Host": host})
        assert status == 200


def test_origin_must_match_scheme_host_and_port(open_server: ServerProcess) -> None:
    port = open_server.port
    url = f"ws://127.0.0.1:{port}/ws"
    for origin in (f"https://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}", "null"):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, origin=origin, timeout=10)
        assert refused.value.status_code == 403, origin
        assert error_code(refused.value.resp_body or b"") == "origin_not_allowed"
    ws = websocket.create_connection(url, origin=f"http://127.0.0.1:{port}", timeout=10)
    ws.close()
    # A cross-site page cannot start a generation with a text/plain POST either.
    status, _, body = open_server.request(
        "POST",
        "/v1/chat/completions",
        CHAT,
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
    )
    assert (status, error_code(body)) == (403, "origin_not_allowed")
    # Nor with a request that carries no Origin (an <img src=...>): browsers say Sec-Fetch-Site.
    for site in ("cross-site", "same-site"):
        status, _, body = open_server.request(
            "GET", "/sse?prompt=hi&max_tokens=1", headers={"Sec-Fetch-Site": site}
        )
        assert (status, error_code(body)) == (403, "origin_not_allowed"), site
    for site in ("same-origin", "none"):  # the page itself; a URL typed in
        status, _, _ = open_server.request(
            "GET", "/sse?prompt=hi&max_tokens=1", headers={"Sec-Fetch-Site": site}
        )
        assert status == 200, site


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process has had, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def send_big_body(port: int, path: str, size: int, headers: str = "") -> bytes:
    """Announce and start sending a ``size``-byte body; the answer, read once
    the server stops reading."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n{headers}\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        block = b"x" * (1 << 20)
        sent = 0
        try:
            while sent < size:
                sent += sock.send(block[: size - sent])
        except OSError:
            pass  # the server closed the connection: it is not reading the body
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert sent < size, "the server read the whole body"
    return answer


def test_a_100_mib_body_is_refused_unread(keyed: ServerProcess) -> None:
    size = 100 * 1024 * 1024
    before = peak_rss(keyed.pid)
    answers = [
        send_big_body(keyed.port, "/v1/chat/completions", size, f"Authorization: Bearer {KEY}\r\n"),
        send_big_body(keyed.port, "/cancel?stream=x", size),  # no key: refused just as early
        send_big_body(keyed.port, "/v1/chat/completions", size),
    ]
    growth = peak_rss(keyed.pid) - before
    assert growth < 10 * 1024 * 1024, f"peak RSS grew {growth / 2**20:.1f} MiB"
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert error_code(body) == "body_too_large"
    status, _, _ = keyed.request("POST", "/v1/chat/completions", CHAT, bearer(KEY))
    assert status == 200  # and it still serves


def test_control_characters_in_headers_get_the_json_400(open_server: ServerProcess) -> None:
    for header in (b"X-Test: a\x01b", b"X-Test: a\x7fb", b"Bad Name: x"):
        answer = open_server.raw(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n\r\n"
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), answer
        assert b"application/json" in head and error_code(body) == "invalid_header"


def test_options_is_405_without_cors(open_server: ServerProcess) -> None:
    status, headers, body = open_server.request("OPTIONS", "/v1/chat/completions")
    assert (status, error_code(body)) == (405, "method_not_allowed")
    assert headers["Allow"] == "POST"
    status, _, _ = open_server.request(
        "OPTIONS",
        "/v1/chat/completions",
        headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert status == 405


def test_cors_preflight_works_for_configured_origins() -> None:
    origin = "http://app.example:3000"
    with ServerProcess(
        "--tokens-per-second", "0", "--allowed-origin", origin, env={"TWINSTREAM_API_KEY": KEY}
    ) as server:
        status, headers, _ = server.request(
            "OPTIONS",
            "/v1/chat/completions",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
        status, headers, body = server.request(
            "POST", "/v1/chat/completions", CHAT, {"Origin": origin, **bearer(KEY)}
        )
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
        status, headers, _ = server.request("GET", "/v1/models", headers={"Origin": origin})
        assert status == 401 and headers["Access-Control-Allow-Origin"] == origin
        status, _, body = server.request(
            "OPTIONS",
            "/v1/chat/completions",
            headers={"Origin": "http://other.example", "Access-Control-Request-Method": "POST"},
        )
        assert status == 405


def test_starting_streams_is_rate_limited_per_address() -> None:
    with ServerProcess("--tokens-per-second", "0", "--streams-per-minute", "2") as server:
        for _ in range(2):
            assert server.request("GET", "/sse?prompt=hi&max_tokens=1")[0] == 200
        status, headers, body = server.request("GET", "/sse?prompt=hi&max_tokens=1")
        assert (status, error_code(body)) == (429, "rate_limited")
        assert 1 <= int(headers["Retry-After"]) <= 30
        # Resuming is not starting; forwarded headers from an untrusted peer are ignored.
        status, _, _ = server.request("GET", "/sse?last_event_id=AAAAAAAAAAAAAAAAAAAAAA:0")
        assert status == 404
        status, _, _ = server.request(
            "GET", "/sse?prompt=hi", headers={"X-Forwarded-For": "192.0.2.1"}
        )
        assert status == 429
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws", timeout=10)
        try:
            ws.send(json.dumps({"type": "start", "prompt": "hi", "ref": 7}))
            event = json.loads(ws.recv())
            assert (event["type"], event["code"], event["ref"]) == ("error", "rate_limited", 7)
        finally:
            ws.close()


def test_a_trusted_proxy_names_the_client() -> None:
    with ServerProcess(
        "--tokens-per-second", "0", "--streams-per-minute", "1", "--trusted-proxy", "127.0.0.1"
    ) as server:
        for client in ("192.0.2.1", "192.0.2.2"):
            status, _, _ = server.request(
                "GET", "/sse?prompt=hi&max_tokens=1", headers={"X-Forwarded-For": client}
            )
            assert status == 200, client
        status, _, _ = server.request(
            "GET", "/sse?prompt=hi&max_tokens=1", headers={"X-Forwarded-For": "192.0.2.1"}
        )
        assert status == 429


def test_help_shows_whether_a_key_is_set_never_the_key() -> None:
    secret = "topsecret-1f2e3d"
    shown = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "TWINSTREAM_API_KEY": secret, "COLUMNS": "200"},
    )
    assert shown.returncode == 0
    assert secret not in shown.stdout + shown.stderr
    assert "(default: set)" in shown.stdout
    plain = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "(default: not set)" in plain.stdout


@pytest.mark.parametrize(
    "args, said",
    [
        (["--api-keys-file", "/nonexistent/keys"], "cannot read API keys file"),
        (["--api-key", "two words"], "an API key must be printable, without spaces"),
        (["--allowed-host", "bad host"], "--allowed-host: 'bad host' is not a host name"),
    ],
)
def test_bad_access_settings_stop_the_server_with_a_message(args: list[str], said: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert said in result.stderr and "Traceback" not in result.stderr


def test_keys_file_keys_all_work(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# team\nalpha-1\nbeta-2\n")
    with ServerProcess("--tokens-per-second", "0", "--api-keys-file", str(keys)) as server:
        for key, ok in (("alpha-1", 200), ("beta-2", 200), ("gamma-3", 401)):
            assert server.request("GET", "/v1/models", headers=bearer(key))[0] == ok
