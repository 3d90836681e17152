"""Reconnect, resume and cancel, over real sockets.

The server here paces tokens (200/s), so a connection can be cut while a
stream is still being generated. Cuts come from the server (its own close,
or a TCP proxy in between closing with FIN or RST) and from the client.
"""

from __future__ import annotations

import contextlib
import gc
import json
import socket
import struct
import threading
from collections.abc import Iterator

import httpx
import httpx_sse
import pytest
from tornado.websocket import WebSocketHandler

import clients
from clients.sse import SSEDecoder
from server.app import Settings
from server.backends.synthetic import synthetic_tokens

TRANSPORTS = ["sse", "ws"]
PROMPT = "resume me"  # 190 synthetic tokens
MAX_TOKENS = 80
EXPECTED = "".join(synthetic_tokens(PROMPT)[:MAX_TOKENS])
FAST_RETRY = clients.ReconnectPolicy(max_attempts=5, initial_delay=0.02, max_delay=0.1)
READ_TIMEOUT = 5.0  # a safety net: every cut here is noticed at once


@pytest.fixture
def live_settings() -> Settings:
    # retry_ms: the SSE reconnection hint the client honours; small keeps tests fast.
    # heartbeat: small, so real streams carry heartbeat comment lines between events.
    return Settings(
        tokens_per_second=200,
        first_token_latency=0,
        ws_ping_interval=0,
        retry_ms=20,
        heartbeat=0.002,
    )


class CutProxy:
    """A TCP proxy on 127.0.0.1 whose connections the test can cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_forever, daemon=True).start()

    def _accept_forever(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return  # listener closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self.accepted += 1
                self._pairs.append((downstream, upstream))
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        if source in self._cut or sink in self._cut:
            return  # cut() closes these its own way
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self, reset: bool = False) -> int:
        """Close every open connection: with FIN, or with RST (``reset``)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for downstream, upstream in pairs:
            self._cut.update((downstream, upstream))
            if reset:  # closing with a zero linger time sends RST instead of FIN
                downstream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # SHUT_RD wakes the pump threads blocked in recv() without sending anything;
            # the close that follows sends FIN (or RST) once they let go.
            for sock in (downstream, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)
            if not reset:
                with contextlib.suppress(OSError):
                    downstream.shutdown(socket.SHUT_WR)
            downstream.close()
            upstream.close()
        return len(pairs)

    def refuse_new_connections(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()


@pytest.fixture
def proxy(live_server) -> Iterator[CutProxy]:
    cut_proxy = CutProxy(live_server.port)
    yield cut_proxy
    cut_proxy.refuse_new_connections()
    cut_proxy.cut()


def read_with(stream: clients.Stream, action, after_deltas: int = 2) -> list[dict]:
    """Read ``stream`` to its end, calling ``action()`` once after a few deltas."""
    events = []
    for event in stream:
        events.append(event)
        if event["type"] == "delta" and stream.stats.tokens == after_deltas:
            action()
    return events


def assert_complete_and_unique(stream: clients.Stream, events: list[dict]) -> None:
    assert stream.text == EXPECTED
    assert [e["seq"] for e in events] == list(range(MAX_TOKENS + 2))
    assert events[-1]["type"] == "done" and stream.finish_reason == "length"


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resumes_after_the_peer_cuts_the_connection(proxy, transport, reset):
    stream = clients.stream(
        PROMPT,
        transport,
        proxy.url,
        max_tokens=MAX_TOKENS,
        reconnect=FAST_RETRY,
        read_timeout=READ_TIMEOUT,
    )
    cuts: list[int] = []
    events = read_with(stream, lambda: cuts.append(proxy.cut(reset)))
    assert cuts == [1]
    assert_complete_and_unique(stream, events)
    assert stream.stats.reconnects >= 1
    assert proxy.accepted >= 2
    if transport == "sse":
        assert stream.server_retry_ms == 20  # the server's hint, used as the backoff base


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resumes_after_the_client_drops_the_connection(live_server, transport):
    stream = clients.stream(
        PROMPT,
        transport,
        live_server.url,
        max_tokens=MAX_TOKENS,
        reconnect=FAST_RETRY,
        read_timeout=READ_TIMEOUT,
    )
    events = read_with(stream, stream.reconnect)
    assert_complete_and_unique(stream, events)
    assert stream.stats.reconnects == 1


def close_server_side(live_server) -> None:
    """Close every client connection from inside the server."""

    async def close_all() -> None:
        for obj in gc.get_objects():
            # Only this server's sockets: handlers of earlier tests' servers may
            # still await collection, on event loops that are closed. type(), not
            # isinstance(): a dead weakref.proxy among gc's objects raises on isinstance.
            if (
                issubclass(type(obj), WebSocketHandler)
                and obj.application is live_server.app
                and obj.ws_connection is not None
            ):
                obj.close(1001, "test closes the socket")
        await live_server._server.close_all_connections()  # HTTP (the SSE requests)

    live_server.call(close_all)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resumes_after_the_server_closes_the_connection(live_server, transport):
    stream = clients.stream(
        PROMPT,
        transport,
        live_server.url,
        max_tokens=MAX_TOKENS,
        reconnect=FAST_RETRY,
        read_timeout=READ_TIMEOUT,
    )
    events = read_with(stream, lambda: close_server_side(live_server))
    assert_complete_and_unique(stream, events)
    assert stream.stats.reconnects >= 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resume_fails_when_the_server_forgot_the_stream(proxy, live_server, transport):
    stream = clients.stream(
        PROMPT,
        transport,
        proxy.url,
        max_tokens=MAX_TOKENS,
        reconnect=FAST_RETRY,
        read_timeout=READ_TIMEOUT,
    )

    forgotten = []

    def forget_and_cut() -> None:
        # as if it had expired: the store no longer has it (its generation goes on)
        forgotten.append(live_server.call(live_server.store._streams.pop, stream.stream_id))
        proxy.cut()

    with pytest.raises(clients.ResumeFailed, match="no longer knows|stream_not_found") as caught:
        read_with(stream, forget_and_cut)
    live_server.call(forgotten[0].cancel)
    assert stream.text == EXPECTED[: len(stream.text)]
    if transport == "sse":
        assert isinstance(caught.value.__cause__, clients.HTTPStatusError)
        assert caught.value.__cause__.code == "stream_not_found"
    else:
        assert isinstance(caught.value.__cause__, clients.StreamError)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resume_gives_up_after_bounded_attempts(proxy, transport):
    policy = clients.ReconnectPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02)
    stream = clients.stream(PROMPT, transport, proxy.url, max_tokens=MAX_TOKENS, reconnect=policy)

    def server_gone() -> None:
        proxy.refuse_new_connections()
        proxy.cut()

    with pytest.raises(clients.ResumeFailed, match="after 3 attempts") as caught:
        read_with(stream, server_gone)
    assert caught.value.attempts == 3
    assert isinstance(caught.value.__cause__, clients.ServerUnreachable)
    assert stream.stats.reconnects == 3
    assert stream.text and EXPECTED.startswith(stream.text) and stream.text != EXPECTED


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_resume_when_reconnecting_is_off(proxy, transport):
    off = clients.ReconnectPolicy(max_attempts=0)
    stream = clients.stream(PROMPT, transport, proxy.url, max_tokens=MAX_TOKENS, reconnect=off)
    with pytest.raises(clients.ConnectionLost, match="reconnecting is off"):
        read_with(stream, proxy.cut)
    assert proxy.accepted == 1


def test_websocket_resumes_every_open_stream_on_the_new_socket(proxy):
    with clients.connect(
        "ws", proxy.url, reconnect=FAST_RETRY, read_timeout=READ_TIMEOUT
    ) as client:
        first = client.stream(PROMPT, MAX_TOKENS)
        second = client.stream("cut me", 60)
        left, right = iter(first), iter(second)
        next(left), next(right)
        assert proxy.cut() == 1
        while not (first.ended and second.ended):
            for iterator in (left, right):
                next(iterator, None)
        assert client.connections == 2
    assert first.text == EXPECTED
    assert second.text == "".join(synthetic_tokens("cut me")[:60])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_from_another_thread(live_server, transport):
    stream = clients.stream(PROMPT, transport, live_server.url)  # 190 tokens, ~1 s
    types = []
    for event in stream:
        types.append(event["type"])
        if event["type"] == "start":
            threading.Thread(target=stream.cancel).start()
    assert stream.cancelled
    assert stream.stats.tokens < 190
    assert "".join(synthetic_tokens(PROMPT)).startswith(stream.text)
    # WebSocket: a cancel message; SSE: POST /cancel. Either way the server ends the
    # stream and says so on the stream itself.
    assert types[-1] == "done" and stream.finish_reason == "cancelled"
    server_stream = live_server.store.get(stream.stream_id)
    assert server_stream.events[-1]["finish_reason"] == "cancelled"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_before_the_start_event(live_server, transport):
    stream = clients.stream(PROMPT, transport, live_server.url)
    stream.cancel()  # nothing has been sent yet
    assert list(stream) == []
    assert stream.stream_id is None and stream.cancelled


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_while_the_start_is_on_its_way(live_server, transport):
    """cancel() from another thread before ``start`` arrives is sent once it does."""
    stream = clients.stream(PROMPT, transport, live_server.url)
    iterator = iter(stream)
    cancelled = threading.Event()

    def cancel_early() -> None:
        stream.cancel()
        cancelled.set()

    # first read happens in this thread; the cancel races it from another one
    threading.Thread(target=cancel_early).start()
    events = list(iterator)
    cancelled.wait(10)
    if events:  # the request went out before the cancel: the stream must end cancelled
        assert events[-1]["type"] == "done"
        server_stream = live_server.store.get(stream.stream_id)
        assert server_stream.events[-1]["finish_reason"] == "cancelled"
        assert stream.stats.tokens < 190
    else:  # cancelled before anything was sent
        assert stream.stream_id is None


def test_websocket_cancel_keeps_the_socket_for_the_next_turn(live_server):
    with clients.connect("ws", live_server.url) as client:
        stream = client.stream(PROMPT)
        for event in stream:
            if event["type"] == "delta":
                stream.cancel()
        assert stream.finish_reason == "cancelled"
        assert client.stream("next", 3).collect() == "".join(synthetic_tokens("next")[:3])
        assert client.connections == 1


def test_our_decoder_matches_httpx_sse_on_a_real_stream(live_server):
    """Decode the same real /sse bytes, heartbeats included, with ours and with httpx-sse."""
    chunks: list[bytes] = []
    with httpx.Client(timeout=10) as http:
        with http.stream(
            "GET", live_server.url + "/sse", params={"prompt": PROMPT, "max_tokens": 40}
        ) as response:
            assert response.status_code == 200
            chunks.extend(response.iter_raw())
    raw = b"".join(chunks)
    assert b"\n: heartbeat\n" in raw  # the interesting case: comment lines between events

    ours = SSEDecoder()
    our_events = [event for chunk in chunks for event in ours.feed(chunk)]
    replay = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=httpx.ByteStream(raw)
    )
    theirs = list(httpx_sse.EventSource(replay).iter_sse())

    assert len(our_events) == 42
    assert [(e.event, e.data, e.id) for e in our_events] == [
        (e.event, e.data, e.id) for e in theirs
    ]
    assert our_events[0].retry == theirs[0].retry == 20
    content = "".join(json.loads(e.data).get("content", "") for e in our_events)
    assert content == "".join(synthetic_tokens(PROMPT)[:40])
