"""SIGTERM under load, on both stores: every connection ends the way its protocol
says. Each SSE response is a complete HTTP body (its last chunk) ending after a
terminal event or a ``retry:`` hint; each WebSocket gets a close frame (1001 with
the memory store, 1012 with Redis); each ``/v1`` stream ends with an error chunk
and ``[DONE]``; the process exits 0 with no traceback in its log."""

from __future__ import annotations

import asyncio
import json
import os
import signal

from support.raw_clients import RawConnection, open_sse, open_ws, post_json, sse_events, text_frame
from support.redisutil import RedisServer
from support.server_process import ServerProcess

from benchmarks import rawwire

#: streams per transport: a few in CI; TWINSTREAM_SHUTDOWN_STREAMS=200 for the issue's
#: full-size check
STREAMS = int(os.environ.get("TWINSTREAM_SHUTDOWN_STREAMS", "8"))
LONG = 400  # tokens asked for: at 5 tokens/s, far more than the drain deadline lets through


def paced(*flags: str, drain: str = "1") -> ServerProcess:
    """A server at 5 tokens/s, no start limit, draining for ``drain`` seconds."""
    return ServerProcess(
        "--tokens-per-second", "5", "--first-token-latency", "0",
        "--streams-per-minute", "0", "--drain-timeout", drain, *flags,
    )  # fmt: skip


async def start_load(
    port: int,
) -> tuple[list[RawConnection], list[RawConnection], list[RawConnection]]:
    """Long streams on every transport, each seen to have begun."""
    sse = [await open_sse(port, f"prompt=sse+{n}&max_tokens={LONG}") for n in range(STREAMS)]
    sockets = []
    for n in range(STREAMS):
        socket = await open_ws(port)
        start = {"type": "start", "prompt": f"ws {n}", "max_tokens": LONG, "ref": n}
        await socket.send(text_frame(json.dumps(start)))
        sockets.append(socket)
    body = {"model": "m", "stream": True, "max_tokens": LONG}
    v1 = [
        await post_json(
            port,
            "/v1/chat/completions",
            {**body, "messages": [{"role": "user", "content": f"v1 {n}"}]},
        )
        for n in range(STREAMS)
    ]
    for connection in sse + v1:
        await connection.read_until(b'"content"', 10)  # a delta (or chunk) arrived
    for socket in sockets:
        await socket.read_until(b'"delta"', 10)
    return sse, sockets, v1


async def sigterm_and_read(server: ServerProcess, connections: list[RawConnection]) -> list[bytes]:
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    return list(await asyncio.gather(*(c.read_to_end(30) for c in connections)))


def only_response(data: bytes) -> rawwire.HTTPResponse:
    responses = rawwire.parse_http_responses(data)
    assert len(responses) == 1
    return responses[0]


def check_exit(server: ServerProcess) -> None:
    assert server.process is not None
    assert server.process.wait(30) == 0
    assert "Traceback" not in server.logs()


async def test_memory_store_sigterm_finishes_every_connection_properly() -> None:
    with paced() as server:
        sse, sockets, v1 = await start_load(server.port)
        received = await sigterm_and_read(server, sse + sockets + v1)
        check_exit(server)
    sse_data, ws_data, v1_data = (
        received[:STREAMS],
        received[STREAMS : 2 * STREAMS],
        received[2 * STREAMS :],
    )
    for data in sse_data:
        response = only_response(data)
        assert response.complete  # the terminating chunk came
        body = response.body.decode()
        # the drain's retry hint, beside the one on the first event
        assert body.count("retry: ") == 2
        last = sse_events(response.body)[-1]
        assert (last["type"], last["code"]) == ("error", "server_shutdown")
    for data in ws_data:
        frames = rawwire.parse_ws_frames(data)
        assert frames.close_code == 1001  # going away, once the stream had ended
        last = json.loads(frames.messages[-1])
        assert (last["type"], last["code"]) == ("error", "server_shutdown")
    for data in v1_data:
        response = only_response(data)
        assert response.complete
        lines = [line for line in response.body.decode().splitlines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["error"]["code"] == "server_shutdown"


async def test_memory_store_streams_that_finish_in_time_finish_whole() -> None:
    """Within the drain deadline a stream ends as it would have: ``done``."""
    with paced(drain="20") as server:
        connection = await open_sse(server.port, "prompt=short&max_tokens=10")
        await connection.read_until(b'"delta"', 10)
        (data,) = await sigterm_and_read(server, [connection])
        check_exit(server)
    response = only_response(data)
    assert response.complete
    events = sse_events(response.body)
    assert (events[-1]["type"], events[-1]["finish_reason"]) == ("done", "length")
    assert [e["seq"] for e in events] == list(range(12))


async def test_idle_websockets_get_going_away_at_once() -> None:
    with ServerProcess("--streams-per-minute", "0", "--drain-timeout", "20") as server:
        socket = await open_ws(server.port)
        (data,) = await sigterm_and_read(server, [socket])
        check_exit(server)
    assert rawwire.parse_ws_frames(data).close_code == 1001


async def test_redis_store_sigterm_sends_every_reader_elsewhere(redis_server: RedisServer) -> None:
    with paced("--store", redis_server.url) as server:
        sse, sockets, v1 = await start_load(server.port)
        received = await sigterm_and_read(server, sse + sockets + v1)
        check_exit(server)
    for data in received[:STREAMS]:
        response = only_response(data)
        assert response.complete
        assert response.body.decode().count("retry: ") == 2  # reconnect elsewhere, resume
    for data in received[STREAMS : 2 * STREAMS]:
        assert rawwire.parse_ws_frames(data).close_code == 1012
    for data in received[2 * STREAMS :]:
        response = only_response(data)
        assert response.complete
        lines = [line for line in response.body.decode().splitlines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["error"]["code"] == "server_shutdown"
