"""Bounded readers: a connection that stops reading is cut as a slow consumer
(SSE: the connection closes; WebSocket: close code 4008), within the write
deadline, and resumes from the log with nothing lost. Real sockets to a real
server; the stuck clients are raw sockets with a tiny receive buffer."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import tornado.iostream
import tornado.websocket
from httpx_sse import aconnect_sse

from server.app import Settings, make_app
from server.backends.base import ChatRequest, Finish
from server.core.log import StreamLog
from server.core.relay import Cut, Outcome, Relay, Sink, SinkState
from server.core.store import MemoryStreamStore
from server.core.watch import ConnectionWatch
from server.tornado_adapter import IOStreamTransport
from server.wire import events as wire_events

PIECES = 4000
PIECE = "x" * 2000  # ~8 MB of events per stream: more than loopback's socket buffers hold


class BigBackend:
    """A long, fast completion, so a reader that stops reading falls behind."""

    model = "big"

    async def generate(self, request: ChatRequest) -> AsyncIterator[str | Finish]:
        for index in range(PIECES):
            yield f"{index:05d}{PIECE}"
            if index % 20 == 0:
                await asyncio.sleep(0)
        yield Finish(reason="stop")


@pytest.fixture
def settings() -> Settings:
    # A write deadline long enough that the normal reader of the resume, in
    # this same busy event loop, is never taken for a slow consumer.
    return Settings(ws_ping_interval=0, write_timeout=1.5, max_pending_bytes=256 * 1024)


@pytest.fixture
def app(settings: Settings, io_loop: Any) -> Any:
    application = make_app(
        settings, store=MemoryStreamStore.from_settings(BigBackend(), Settings())
    )
    yield application
    io_loop.run_sync(application.settings["store"].close, timeout=10)


async def stuck_socket(port: int) -> socket.socket:
    """A connected socket that will never be read (4 KiB receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def read_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    sock.close()
    return bytes(data)


async def wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def port_of(client: Any) -> int:
    return int(client._http_server_port[1]) if hasattr(client, "_http_server_port") else 0


async def test_a_stuck_sse_reader_is_cut_and_resumes_with_nothing_lost(
    http_server_client: Any, http_server_port: Any, app: Any
) -> None:
    port = http_server_port[1]
    watch = app.settings["watch"]
    sock = await stuck_socket(port)
    request = f"GET /sse?prompt=stuck HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())
    await wait_for(lambda: watch.slow_consumers == 1)
    assert watch.relays == 0  # its relay stopped; the stream goes on
    raw = await read_until_closed(sock)
    assert not raw.endswith(b"0\r\n\r\n")  # cut, not a finished response
    seqs = [int(line.split(b":")[-1]) for line in raw.split(b"\n") if line.startswith(b"id: ")]
    assert seqs == list(range(len(seqs))) and seqs
    # EventSource would now reconnect with the last id it saw:
    last = seqs[-1]
    stream_id = json.loads(raw.split(b"data: ", 1)[1].split(b"\n", 1)[0])["stream"]
    async with httpx.AsyncClient(timeout=10) as client:
        async with aconnect_sse(
            client,
            "GET",
            f"http://127.0.0.1:{port}/sse",
            headers={"Last-Event-ID": f"{stream_id}:{last}"},
        ) as source:
            rest = [json.loads(event.data) async for event in source.aiter_sse()]
    assert [e["seq"] for e in rest] == list(range(last + 1, PIECES + 2))
    assert rest[-1]["type"] == "done"


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (RFC 6455 5.3: clients must mask)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    else:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    return header + mask + masked


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each complete unmasked server frame."""
    frames = []
    at = data.index(b"\r\n\r\n") + 4  # after the handshake response
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[at : at + 2])
            at += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[at : at + 8])
            at += 8
        if at + length > len(data):
            break
        frames.append((opcode, data[at : at + length]))
        at += length
    return frames


async def open_raw_websocket(port: int) -> socket.socket:
    """A stuck socket that completed a WebSocket handshake (unread)."""
    sock = await stuck_socket(port)
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await asyncio.get_running_loop().sock_sendall(sock, handshake.encode())
    return sock


def events_in_order(frames: list[tuple[int, bytes]]) -> dict[str, int]:
    """The last seq seen of each stream, checking each stream's events are
    in order with no gap."""
    seen: dict[str, int] = {}
    for opcode, payload in frames:
        event = json.loads(payload) if opcode == 0x1 else None
        if event is None or event["stream"] is None:
            continue
        assert event["seq"] == seen.get(event["stream"], -1) + 1  # in order, no gaps
        seen[event["stream"]] = event["seq"]
    return seen


async def resume_all(port: int, seen: dict[str, int]) -> None:
    """Resume every stream on a new socket: nothing lost, nothing repeated."""
    connection = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
    try:
        for stream_id, last in seen.items():
            connection.write_message(
                json.dumps({"type": "resume", "stream": stream_id, "after": last})
            )
        done: set[str] = set()
        while len(done) < len(seen):
            message = await asyncio.wait_for(connection.read_message(), 10)
            assert message is not None
            event = json.loads(message)
            assert event["seq"] == seen[event["stream"]] + 1
            seen[event["stream"]] = event["seq"]
            if event["type"] == "done":
                done.add(event["stream"])
        assert all(seq == PIECES + 1 for seq in seen.values())
    finally:
        connection.close()


async def test_a_stuck_websocket_that_floods_and_pings_is_cut_and_resumes(
    http_server_client: Any, http_server_port: Any, app: Any
) -> None:
    """Answering pings is not progress: only the kernel taking bytes is. A
    reader that takes nothing for the write deadline is disconnected (its TCP
    connection closed: a close frame could never get past its backlog)."""
    port = http_server_port[1]
    watch = app.settings["watch"]
    loop = asyncio.get_running_loop()
    sock = await open_raw_websocket(port)
    for ref in range(5):
        start = {"type": "start", "prompt": f"flood {ref}", "ref": ref}
        await loop.sock_sendall(sock, ws_frame(json.dumps(start).encode()))
    for _ in range(60):
        if watch.slow_consumers:
            break
        await loop.sock_sendall(sock, ws_frame(b"are you there", opcode=0x9))
        await asyncio.sleep(0.1)
    await wait_for(lambda: watch.slow_consumers == 1)
    frames = parse_frames(await read_until_closed(sock))
    assert all(opcode != 0x8 for opcode, _ in frames)  # cut, no close frame
    seen = events_in_order(frames)
    assert len(seen) == 5
    await resume_all(port, seen)


async def test_a_websocket_past_the_pending_cap_is_closed_4008_behind_its_backlog(
    http_server_client: Any, http_server_port: Any, app: Any
) -> None:
    """A reader that lets more than --max-pending-bytes pile up (here: a burst
    of bad messages whose error events cannot be delivered) is closed with
    4008; the close frame comes after everything queued before it."""
    port = http_server_port[1]
    watch = app.settings["watch"]
    loop = asyncio.get_running_loop()
    sock = await open_raw_websocket(port)
    for ref in range(3):
        start = {"type": "start", "prompt": f"cap {ref}", "ref": ref}
        await loop.sock_sendall(sock, ws_frame(json.dumps(start).encode()))
    await asyncio.sleep(0.3)  # the streams fill the socket
    bad = ws_frame(b'{"type": "nonsense"}') * 4000  # each answered by an error event
    await loop.sock_sendall(sock, bad)
    await wait_for(lambda: watch.slow_consumers == 1)
    frames = parse_frames(await read_until_closed(sock))
    assert frames[-1][0] == 0x8  # the last frame is the close frame...
    assert struct.unpack("!H", frames[-1][1][:2])[0] == 4008  # ...with code 4008
    assert frames[-1][1][2:] == b"slow consumer"
    seen = events_in_order(frames)
    assert len(seen) == 3
    await resume_all(port, seen)


class TestPipelinedResponses:
    """HTTP/1.1 pipelining: a response may start behind another response's
    unread backlog; the write deadline must run for it too."""

    @pytest.fixture
    def app(self, settings: Settings, io_loop: Any) -> Any:
        from server.backends.synthetic import SyntheticBackend

        application = make_app(
            settings,
            store=MemoryStreamStore.from_settings(
                SyntheticBackend.from_settings(Settings(tokens_per_second=0)), Settings()
            ),
        )
        yield application
        io_loop.run_sync(application.settings["store"].close, timeout=10)

    async def test_a_stuck_reader_of_pipelined_sse_requests_is_cut(
        self, http_server_client: Any, http_server_port: Any, app: Any
    ) -> None:
        port = http_server_port[1]
        watch = app.settings["watch"]
        sock = await stuck_socket(port)
        requests = "".join(
            f"GET /sse?prompt=pipelined+{i} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            for i in range(400)
        )
        await asyncio.get_running_loop().sock_sendall(sock, requests.encode())
        await wait_for(lambda: watch.slow_consumers == 1)
        raw = await read_until_closed(sock)
        assert raw.count(b"HTTP/1.1 200 OK") < 400  # cut before the last response


class RecordingOwner:
    """A sink's owner that records what the relay core tells it."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.cuts: list[Cut] = []

    def write_head(self, payload: bytes) -> None:
        raise AssertionError("no head expected")

    def cut(self, reason: Cut) -> None:
        self.cuts.append(reason)

    def relay_stopped(self, relay: Relay, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


async def test_a_relay_writes_each_append_in_order_and_completes_once() -> None:
    """The push path on its own, over a real socket: a caught-up relay writes each
    event as it is appended (then waits for the next append without polling),
    and ends ``complete`` exactly once, at the terminal event."""
    left, right = socket.socketpair()
    iostream = tornado.iostream.IOStream(left)
    watch = ConnectionWatch(write_timeout=10, heartbeat=0, ping_interval=0)
    owner = RecordingOwner()
    sink = Sink(IOStreamTransport(iostream), owner, watch, max_pending=1 << 20)
    log = StreamLog("RelayPushTest_0123456", "m")
    outcomes = owner.outcomes

    def frame(first_seq: int, texts: list[bytes]) -> bytes:
        return b"".join(b"%d %b\n" % (first_seq + i, text) for i, text in enumerate(texts))

    try:
        log.append(wire_events.start_event(log.id, "m", created=0))
        relay = Relay(log, -1, sink, frame)
        relay.start()  # the start event, then caught up
        log.append_text(wire_events.delta_record("a", 1.5), False)
        await asyncio.sleep(0.01)  # nothing appended meanwhile: nothing written
        log.append_text(wire_events.delta_record("b", 2.5), False)
        assert outcomes == []
        log.append(wire_events.done_event(log.id, 3, "stop"))
        assert outcomes == ["complete"]
        log.append(wire_events.done_event(log.id, 4, "stop"))  # after the end: ignored
        assert outcomes == ["complete"]
        sink.close()
        iostream.close()
        received = bytearray()
        right.setblocking(False)
        loop = asyncio.get_running_loop()
        while chunk := await loop.sock_recv(right, 65536):
            received += chunk
        lines = bytes(received).splitlines()
        assert [int(line.split(b" ", 1)[0]) for line in lines] == [0, 1, 2, 3]
        events = [json.loads(line.split(b" ", 1)[1]) for line in lines]
        assert events == log.events
        assert [e.get("content") for e in events[1:3]] == ["a", "b"]
    finally:
        iostream.close()
        right.close()


async def test_a_sink_s_first_write_goes_through_its_hook_and_heartbeats_wait_for_it() -> None:
    """``first`` (an HTTP response's head) takes the first payload once; until
    then no heartbeat is written, so a stream that is still refused can get an
    error answer instead of a response that has begun."""
    left, right = socket.socketpair()
    iostream = tornado.iostream.IOStream(left)
    watch = ConnectionWatch(write_timeout=10, heartbeat=0, ping_interval=0)
    firsts: list[bytes] = []

    class HeadWriter(RecordingOwner):
        def write_head(self, payload: bytes) -> None:
            firsts.append(payload)
            iostream.write(b"HEAD|" + payload)

    sink = Sink(
        IOStreamTransport(iostream),
        HeadWriter(),
        watch,
        max_pending=1 << 20,
        heartbeat=b"beat|",
        head_pending=True,
    )
    try:
        sink.beat()
        assert firsts == [] and sink.state is SinkState.HEAD_PENDING
        assert sink.write(b"one|") and sink.write(b"two|")
        sink.beat()
        assert firsts == [b"one|"] and sink.state is SinkState.OPEN
        sink.close()
        iostream.close()
        right.setblocking(False)
        received = bytearray()
        loop = asyncio.get_running_loop()
        while chunk := await loop.sock_recv(right, 65536):
            received += chunk
        assert bytes(received) == b"HEAD|one|two|beat|"
    finally:
        iostream.close()
        right.close()


async def test_a_relay_that_raises_closes_its_connection_and_spares_the_producer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug while relaying (here the frame function raises) is logged once, the
    relay stops, and the connection's owner is told to cut it (WebSocket: 1011):
    the reader is not left waiting, and the stream's producer goes on."""
    left, right = socket.socketpair()
    iostream = tornado.iostream.IOStream(left)
    owner = RecordingOwner()
    watch = ConnectionWatch(write_timeout=10, heartbeat=0, ping_interval=0)
    sink = Sink(IOStreamTransport(iostream), owner, watch, max_pending=1 << 20)
    log = StreamLog("RelayFailsTest_0123456", "m")

    def frame(first_seq: int, texts: list[bytes]) -> bytes:
        if first_seq == 1:
            raise RuntimeError("a bug in a frame function")
        return b"".join(texts)

    try:
        log.append(wire_events.start_event(log.id, "m", created=0))
        Relay(log, -1, sink, frame).start()
        log.append_text(wire_events.delta_record("a", 1.5), False)  # the producer's call
        assert owner.cuts == [Cut.FAILED] and owner.outcomes == [Outcome.CLOSED]
        assert sink.closed and log.followers == []
        log.append(wire_events.done_event(log.id, 2, "stop"))  # generation goes on
        assert log.ended
        failures = [r for r in caplog.records if r.exc_info and "relaying stream" in r.message]
        assert len(failures) == 1
    finally:
        iostream.close()
        right.close()
