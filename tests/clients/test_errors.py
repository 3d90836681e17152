"""Every way a stream can fail, and the exception each one raises.

Misbehaving servers are small raw-socket servers on 127.0.0.1 (free ports);
the well-behaved failures (bad request, error event) come from the real
server, which here fails every stream after 3 tokens.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

import clients
from server.app import Settings
from server.backends.synthetic import synthetic_tokens

TRANSPORTS = ["sse", "ws"]
NO_RETRY = clients.ReconnectPolicy(max_attempts=0)
QUICK_RETRY = clients.ReconnectPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02)
STREAM_ID = "abcdefgh12345678"


@pytest.fixture
def live_settings() -> Settings:
    return Settings(tokens_per_second=0, ws_ping_interval=0, fail_after_tokens=3)


# --- a raw TCP server with scripted behaviour -------------------------------------------


class RawServer:
    """Accepts connections on 127.0.0.1 and runs ``behaviour(server, conn, head)``
    for each, where ``head`` is the request head; ``requests`` records the heads."""

    def __init__(self, behaviour: Callable[[RawServer, socket.socket, bytes], None]) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        self.messages: list[dict] = []  # WebSocket messages received
        self.stopping = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept_forever, daemon=True).start()

    def _accept_forever(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    break
                head += data
            self.requests.append(head)
            self.behaviour(self, conn, head)
        with contextlib.suppress(OSError):
            conn.close()

    def hold(self) -> None:
        """Keep the connection open, saying nothing, until the test ends."""
        self.stopping.wait(30)

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(behaviour: Callable[[RawServer, socket.socket, bytes], None]) -> RawServer:
        servers.append(RawServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"


def sse_event(event: dict) -> bytes:
    return f"id: {event['stream']}:{event['seq']}\ndata: {json.dumps(event)}\n\n".encode()


START = {"type": "start", "stream": STREAM_ID, "seq": 0, "model": "raw"}


def ws_handshake(conn: socket.socket, head: bytes) -> None:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def ws_receive(conn: socket.socket) -> dict:
    """Read one masked client text frame (short payloads only)."""

    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = conn.recv(count - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    _, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    mask = exactly(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(exactly(length)))
    return json.loads(payload)


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def read_all(
    url: str, transport: str, reconnect: clients.ReconnectPolicy = NO_RETRY, **options
) -> clients.Stream:
    stream = clients.stream("hello", transport, url, reconnect=reconnect, **options)
    stream.collect()
    return stream


# --- unreachable ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_unreachable(transport):
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(clients.ServerUnreachable, match="cannot connect to .*refused") as caught:
        read_all(url, transport)
    assert str(caught.value).endswith("Start one with: python3 -m server")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_https_against_a_plain_http_server_says_so(live_server, transport):
    url = live_server.url.replace("http://", "https://")
    with pytest.raises(clients.ClientError, match="plain HTTP, use http://127.0.0.1"):
        read_all(url, transport, connect_timeout=0.5)


# --- HTTP error status (the real server's JSON errors) ----------------------------------


def test_sse_bad_request_carries_the_server_error(live_server):
    with pytest.raises(clients.HTTPStatusError) as caught:
        clients.stream("   ", "sse", live_server.url).collect()
    error = caught.value
    assert (error.status, error.code) == (400, "missing_prompt")
    assert "must not be empty" in error.detail and "HTTP 400 missing_prompt" in str(error)


def test_sse_prompt_too_large_is_413(live_server):
    with pytest.raises(clients.HTTPStatusError) as caught:
        clients.stream("x" * 40_000, "sse", live_server.url).collect()
    assert (caught.value.status, caught.value.code) == (413, "prompt_too_long")
    assert "40000 bytes" in str(caught.value)  # said, not a connection reset


def test_websocket_request_too_large_for_a_frame_says_so(live_server):
    # The server closes with 1009; the close frame or a reset (the unread rest
    # of the frame) comes back, and either way the error says why.
    with pytest.raises(
        clients.ConnectionLost, match="1009, message too big|the request was 300047 bytes"
    ):
        clients.stream("x" * 300_000, "ws", live_server.url).collect()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_path_is_404_with_the_server_error(live_server, transport):
    with pytest.raises(clients.HTTPStatusError) as caught:
        read_all(live_server.url + "/nowhere/sse", transport)
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert "no such endpoint" in caught.value.detail


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_error_status_without_json_body(raw_server, transport):
    def bad_gateway(server: RawServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n"
            b"Connection: close\r\n\r\nupstream is down\r\n"
        )

    server = raw_server(bad_gateway)
    with pytest.raises(clients.HTTPStatusError) as caught:
        read_all(server.url, transport)
    assert (caught.value.status, caught.value.code) == (502, None)
    assert caught.value.detail == "upstream is down"


def test_websocket_refused_start_is_a_stream_error(live_server):
    with pytest.raises(clients.StreamError) as caught:
        clients.stream("x" * 40_000, "ws", live_server.url).collect()
    assert caught.value.code == "prompt_too_long"
    assert caught.value.event["ref"] == "c1"


# --- wrong content type ---------------------------------------------------------------


def html_page(server: RawServer, conn: socket.socket, head: bytes) -> None:
    body = b"<!doctype html><p>captive portal</p>"
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )


def test_sse_wrong_content_type(raw_server):
    server = raw_server(html_page)
    with pytest.raises(clients.WrongContentType, match="text/event-stream, got text/html") as e:
        read_all(server.url, "sse")
    assert e.value.content_type == "text/html; charset=utf-8"


def test_websocket_answered_with_a_page_instead_of_an_upgrade(raw_server):
    server = raw_server(html_page)
    with pytest.raises(clients.MalformedData, match="did not switch to WebSocket"):
        read_all(server.url, "ws")


# --- an error event ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_error_event_raises_stream_error(live_server, transport):
    stream = clients.stream("hello", transport, live_server.url)
    seen = []
    with pytest.raises(clients.StreamError) as caught:
        for event in stream:
            seen.append(event["type"])
    assert caught.value.code == "upstream_error"
    assert caught.value.event["seq"] == 4 and caught.value.event["type"] == "error"
    assert seen == ["start", "delta", "delta", "delta"]
    assert stream.text == "".join(synthetic_tokens("hello")[:3])
    assert stream.ended and stream.finish_reason is None


def test_cli_error_event_exits_non_zero_with_one_line(live_server):
    result = subprocess.run(
        [sys.executable, "-m", "clients", "hello", "--url", live_server.url, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: stream error upstream_error: the model failed while generating"
    ]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"] for e in lines] == ["start", "delta", "delta", "delta", "error"]


# --- malformed data ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_garbage_instead_of_http(raw_server, transport):
    def garbage(server: RawServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"\x00\x17\xfe garbage \xff\r\n\r\n\x00")

    server = raw_server(garbage)
    with pytest.raises(clients.MalformedData):
        read_all(server.url, transport)


def test_sse_data_that_is_not_json(raw_server):
    def not_json(server: RawServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(SSE_HEAD + b"data: {this is not json\n\n")
        server.hold()

    server = raw_server(not_json)
    with pytest.raises(clients.MalformedData, match="not JSON"):
        read_all(server.url, "sse")


def test_sse_json_that_is_not_an_event(raw_server):
    def wrong_shape(server: RawServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(SSE_HEAD + b'data: {"hello": "world"}\n\n')
        server.hold()

    server = raw_server(wrong_shape)
    with pytest.raises(clients.MalformedData, match="not a twinstream event"):
        read_all(server.url, "sse")


def test_sse_endless_line_is_refused(raw_server):
    def endless(server: RawServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(SSE_HEAD + b"data: " + b"x" * (1024 * 1024 + 10))
        server.hold()

    server = raw_server(endless)
    with pytest.raises(clients.MalformedData, match="line longer than"):
        read_all(server.url, "sse")


def test_sse_skipped_events_are_detected(raw_server):
    def gap(server: RawServer, conn: socket.socket, head: bytes) -> None:
        delta = {"type": "delta", "stream": STREAM_ID, "seq": 3, "content": "x"}
        conn.sendall(SSE_HEAD + sse_event(START) + sse_event(delta))
        server.hold()

    server = raw_server(gap)
    with pytest.raises(clients.MalformedData, match="events 1..2 are missing"):
        read_all(server.url, "sse")


@pytest.mark.parametrize(
    "frame, message",
    [(ws_frame(b"{not json"), "not JSON"), (ws_frame(b"\x00\x01", opcode=0x2), "binary")],
    ids=["text", "binary"],
)
def test_websocket_garbage_message(raw_server, frame, message):
    def garbage(server: RawServer, conn: socket.socket, head: bytes) -> None:
        ws_handshake(conn, head)
        server.messages.append(ws_receive(conn))
        conn.sendall(frame)
        server.hold()

    server = raw_server(garbage)
    with pytest.raises(clients.MalformedData, match=message):
        read_all(server.url, "ws")
    assert server.messages == [{"type": "start", "prompt": "hello", "ref": "c1"}]


# --- closed in the middle of an event ---------------------------------------------------


def test_sse_closed_mid_event_before_start(raw_server):
    def cut(server: RawServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(SSE_HEAD + b'id: x:0\ndata: {"type": "sta')

    server = raw_server(cut)
    with pytest.raises(clients.ConnectionLost, match="middle of an event.*none to resume"):
        read_all(server.url, "sse", reconnect=QUICK_RETRY)
    assert len(server.requests) == 1  # nothing to resume, so no second try


def sse_start_then_cut(server: RawServer, conn: socket.socket, head: bytes) -> None:
    conn.sendall(SSE_HEAD + sse_event(START) + f"id: {STREAM_ID}:1\ndata: {{".encode())


def test_sse_closed_mid_event_is_resumed_then_given_up(raw_server):
    server = raw_server(sse_start_then_cut)
    with pytest.raises(clients.ResumeFailed, match="after 2 attempts.*middle of an event"):
        read_all(server.url, "sse", reconnect=QUICK_RETRY)
    assert len(server.requests) == 3
    assert b"last-event-id" not in server.requests[0].lower()
    for resume in server.requests[1:]:  # resumed after the last complete event
        assert f"Last-Event-ID: {STREAM_ID}:0".encode() in resume
        assert b"prompt=" not in resume


def test_sse_closed_mid_event_without_reconnect(raw_server):
    server = raw_server(sse_start_then_cut)
    with pytest.raises(clients.ConnectionLost, match="reconnecting is off"):
        read_all(server.url, "sse")


def test_sse_resume_answered_204_without_the_last_event(raw_server):
    def start_then_nothing_more(server: RawServer, conn: socket.socket, head: bytes) -> None:
        if b"Last-Event-ID" in head:
            conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        else:
            sse_start_then_cut(server, conn, head)

    server = raw_server(start_then_nothing_more)
    with pytest.raises(clients.ResumeFailed, match="last event never arrived"):
        read_all(server.url, "sse", reconnect=QUICK_RETRY)
    assert len(server.requests) == 2


def test_websocket_closed_mid_frame_is_resumed_then_given_up(raw_server):
    def start_then_cut(server: RawServer, conn: socket.socket, head: bytes) -> None:
        ws_handshake(conn, head)
        message = ws_receive(conn)
        server.messages.append(message)
        if message["type"] == "start":
            conn.sendall(ws_frame(json.dumps({**START, "ref": message["ref"]}).encode()))
        conn.sendall(bytes([0x81, 100]) + b'{"type": "de')  # 100 bytes promised, 12 sent

    server = raw_server(start_then_cut)
    with pytest.raises(clients.ResumeFailed, match="after 2 attempts") as caught:
        read_all(server.url, "ws", reconnect=QUICK_RETRY)
    assert caught.value.attempts == 2
    assert server.messages == [
        {"type": "start", "prompt": "hello", "ref": "c1"},
        {"type": "resume", "stream": STREAM_ID, "after": 0},
        {"type": "resume", "stream": STREAM_ID, "after": 0},
    ]


def test_websocket_closed_before_start_cannot_be_resumed(raw_server):
    def cut(server: RawServer, conn: socket.socket, head: bytes) -> None:
        ws_handshake(conn, head)
        server.messages.append(ws_receive(conn))
        conn.sendall(bytes([0x81, 100]) + b'{"type": "st')

    server = raw_server(cut)
    with pytest.raises(clients.ConnectionLost, match="nothing to resume"):
        read_all(server.url, "ws", reconnect=QUICK_RETRY)
    assert len(server.requests) == 1


# --- a server restarting: 503 while resuming is retried --------------------------------


def delta(seq: int, content: str) -> dict:
    return {"type": "delta", "stream": STREAM_ID, "seq": seq, "content": content}


DONE = {"type": "done", "stream": STREAM_ID, "seq": 3, "finish_reason": "stop"}
UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b'Content-Length: 62\r\n\r\n{"error": {"code": "unavailable", "message": "restarting..."}}'
)


def test_sse_resume_retries_through_a_503(raw_server):
    def restarting(server: RawServer, conn: socket.socket, head: bytes) -> None:
        attempt = len(server.requests)
        if attempt == 1:
            conn.sendall(SSE_HEAD + sse_event(START) + sse_event(delta(1, "a")))
        elif attempt == 2:
            conn.sendall(UNAVAILABLE)
        else:
            conn.sendall(SSE_HEAD + sse_event(delta(2, "b")) + sse_event(DONE))

    server = raw_server(restarting)
    stream = read_all(server.url, "sse", reconnect=QUICK_RETRY)
    assert (stream.text, stream.finish_reason, stream.stats.reconnects) == ("ab", "stop", 2)
    assert f"Last-Event-ID: {STREAM_ID}:1".encode() in server.requests[2]


def test_websocket_resume_retries_through_a_503(raw_server):
    def restarting(server: RawServer, conn: socket.socket, head: bytes) -> None:
        attempt = len(server.requests)
        if attempt == 2:
            conn.sendall(UNAVAILABLE)
            return
        ws_handshake(conn, head)
        message = ws_receive(conn)
        server.messages.append(message)
        if attempt == 1:
            for event in ({**START, "ref": message["ref"]}, delta(1, "a")):
                conn.sendall(ws_frame(json.dumps(event).encode()))
        else:
            conn.sendall(ws_frame(json.dumps(delta(2, "b")).encode()))
            conn.sendall(ws_frame(json.dumps(DONE).encode()))
            server.hold()

    server = raw_server(restarting)
    stream = read_all(server.url, "ws", reconnect=QUICK_RETRY)
    assert (stream.text, stream.finish_reason, stream.stats.reconnects) == ("ab", "stop", 2)
    assert server.messages[1] == {"type": "resume", "stream": STREAM_ID, "after": 1}


# --- cancel on a server without POST /cancel ------------------------------------------


def test_sse_cancel_falls_back_to_closing_the_request(raw_server):
    def no_cancel_endpoint(server: RawServer, conn: socket.socket, head: bytes) -> None:
        if head.startswith(b"POST "):
            body = b'{"error": {"code": "not_found", "message": "no such endpoint"}}'
            conn.sendall(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return
        delta = {"type": "delta", "stream": STREAM_ID, "seq": 1, "content": "hi"}
        conn.sendall(SSE_HEAD + sse_event(START) + sse_event(delta))
        server.hold()  # a stream that would go on forever

    server = raw_server(no_cancel_endpoint)
    stream = clients.stream("hello", "sse", server.url, read_timeout=30)
    for event in stream:
        if event["type"] == "delta":
            stream.cancel()
    assert stream.cancelled and stream.finish_reason is None and stream.text == "hi"
    assert server.requests[1].startswith(f"POST /cancel?stream={STREAM_ID} ".encode())


# --- a server that never answers --------------------------------------------------------


def silent(server: RawServer, conn: socket.socket, head: bytes) -> None:
    server.hold()


def test_sse_server_that_never_answers(raw_server):
    server = raw_server(silent)
    with pytest.raises(clients.Timeout, match="sent no answer within 0.5 s") as caught:
        read_all(server.url, "sse", read_timeout=0.5)
    assert (caught.value.phase, caught.value.seconds) == ("read", 0.5)


def test_websocket_server_that_never_answers(raw_server):
    server = raw_server(silent)
    with pytest.raises(clients.Timeout, match="no WebSocket handshake") as caught:
        read_all(server.url, "ws", connect_timeout=0.2)
    assert caught.value.phase == "connect"


def sse_start_then_silence(server: RawServer, conn: socket.socket, head: bytes) -> None:
    conn.sendall(SSE_HEAD + sse_event(START))
    server.hold()


def test_sse_silence_mid_stream_times_out(raw_server):
    server = raw_server(sse_start_then_silence)
    with pytest.raises(clients.Timeout, match="no data from the server for 0.5 s"):
        read_all(server.url, "sse", read_timeout=0.5)


def test_sse_silence_mid_stream_is_retried_then_given_up(raw_server):
    server = raw_server(sse_start_then_silence)
    with pytest.raises(clients.ResumeFailed) as caught:
        read_all(server.url, "sse", read_timeout=0.5, reconnect=QUICK_RETRY)
    assert isinstance(caught.value.__cause__, clients.Timeout)
    assert len(server.requests) == 3


def test_websocket_silence_mid_stream_times_out(raw_server):
    def start_then_silence(server: RawServer, conn: socket.socket, head: bytes) -> None:
        ws_handshake(conn, head)
        message = ws_receive(conn)
        conn.sendall(ws_frame(json.dumps({**START, "ref": message["ref"]}).encode()))
        server.hold()

    server = raw_server(start_then_silence)
    with pytest.raises(clients.Timeout, match="no message from the server for 0.5 s"):
        read_all(server.url, "ws", read_timeout=0.5)


# --- the hierarchy ----------------------------------------------------------------------


def test_every_error_is_a_client_error():
    for name in (
        "ServerUnreachable",
        "Timeout",
        "HTTPStatusError",
        "WrongContentType",
        "MalformedData",
        "StreamError",
        "ConnectionLost",
        "ResumeFailed",
    ):
        assert issubclass(getattr(clients, name), clients.ClientError)
