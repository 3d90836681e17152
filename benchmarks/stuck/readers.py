"""The stuck readers: a raw socket per transport that never reads after its handshake.

:func:`stuck_websocket` floods ``start`` messages, pongs and pings; :func:`stuck_sse`
pipelines replays of one stream. Each watches the server's side of its connection
until the server drops it, then drains what reached it, learns how it ended and
resumes every stream it knew of, counting events lost, duplicated or garbled.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import psutil

from ..clients import Endpoint, SSEConnection, SSEParser, open_websocket, sse_path
from ..rawwire import (
    has_status,
    head_end,
    http_request,
    parse_http_responses,
    parse_ws_frames,
    status_line,
    ws_frame,
    ws_upgrade_request,
)
from .outcome import StuckOutcome, account
from .plan import STUCK_MAX_TOKENS, StuckPlan
from .probes import holds_connection, kernel_queue

__all__ = ["stuck_websocket", "stuck_sse"]


def _tiny_socket() -> socket.socket:
    """A non-blocking TCP socket with the smallest receive buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # before connect, so the window it advertises is tiny from the start
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sock.setblocking(False)
    return sock


async def _watch(
    process: psutil.Process,
    endpoint: Endpoint,
    client_port: int,
    outcome: StuckOutcome,
    deadline: float,
    gone: asyncio.Event,
) -> None:
    """Poll the server's connection table until it drops ``client_port`` or ``deadline``."""

    def look() -> tuple[int | None, bool]:
        queue = kernel_queue(endpoint.port, client_port)
        try:
            return queue, holds_connection(process, endpoint.port, client_port)
        except psutil.Error:
            return queue, False

    while time.time() < deadline:
        # in a thread: reading the connection tables takes long enough to slow the flood
        queue, held = await asyncio.to_thread(look)
        if queue is not None:
            outcome.max_kernel_queue = max(outcome.max_kernel_queue, queue)
            outcome.queue_samples.append((time.time(), queue))
        if not held:
            outcome.disconnected_at = time.time()
            gone.set()
            return
        await asyncio.sleep(0.1)


async def _drain(sock: socket.socket, seconds: float) -> tuple[bytes, str]:
    """Read what reached the socket until EOF, a reset or ``seconds`` of silence."""
    loop = asyncio.get_running_loop()
    received = bytearray()
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), seconds)
        except asyncio.TimeoutError:
            return bytes(received), "silence"
        except ConnectionResetError:
            return bytes(received), "reset"
        except OSError as exc:
            return bytes(received), f"{type(exc).__name__}"
        if not chunk:
            return bytes(received), "eof"
        received += chunk


async def _resume_ws(
    endpoint: Endpoint, stream_id: str, after: int
) -> tuple[list[int], str, str | None]:
    """Resume ``stream_id`` after ``after`` on a new WebSocket: (seqs, text, error)."""
    websocket = await open_websocket(endpoint)
    seqs: list[int] = []
    text = ""
    try:
        await websocket.send(json.dumps({"type": "resume", "stream": stream_id, "after": after}))
        while True:
            event = json.loads(await asyncio.wait_for(websocket.recv(), 60))
            if event.get("stream") != stream_id:
                continue
            if event["type"] == "error":
                return seqs, text, f"{event.get('code')}"
            seqs.append(int(event["seq"]))
            if event["type"] == "delta":
                text += event.get("content", "")
            if event["type"] == "done":
                return seqs, text, None
    finally:
        await websocket.close()


async def stuck_websocket(
    endpoint: Endpoint,
    process: psutil.Process,
    plan: StuckPlan,
    prompts: Sequence[str],
    deadline: float,
) -> StuckOutcome:
    """The WebSocket stuck reader (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    outcome = StuckOutcome("ws", started_at=time.time())
    sock = _tiny_socket()
    try:
        await loop.sock_connect(sock, (endpoint.host, endpoint.port))
        key = "dHdpbnN0cmVhbS1zdHVjayE="  # any 16 bytes, base64
        await loop.sock_sendall(sock, ws_upgrade_request(endpoint.host, endpoint.port, key))
        head = b""
        while head_end(head) < 0:  # the handshake is the only thing it reads
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        if not has_status(head, 101):
            raise ConnectionError(status_line(head))
        client_port = sock.getsockname()[1]
        gone = asyncio.Event()
        watcher = asyncio.create_task(
            _watch(process, endpoint, client_port, outcome, deadline, gone)
        )
        interval = 1.0 / plan.flood_per_second
        next_keepalive = 0.0
        index = 0
        while not gone.is_set() and time.time() < deadline:
            frames = [
                ws_frame(
                    0x1,
                    json.dumps(
                        {
                            "type": "start",
                            "prompt": prompts[index % len(prompts)],
                            "max_tokens": STUCK_MAX_TOKENS,
                            "ref": index,
                        }
                    ).encode(),
                    os.urandom(4),
                )
            ]
            index += 1
            if time.monotonic() >= next_keepalive:
                # unsolicited pong (RFC 6455 5.5.3: a unidirectional heartbeat) and a ping
                frames += [ws_frame(0xA, b"", os.urandom(4)), ws_frame(0x9, b"k", os.urandom(4))]
                next_keepalive = time.monotonic() + 0.5
            for frame in frames:
                try:
                    sock.send(frame)
                    outcome.sent_messages += 1
                except BlockingIOError:
                    outcome.send_blocked += 1
                except OSError:  # reset, broken pipe: the server is gone
                    gone.set()
                    break
            try:
                await asyncio.wait_for(gone.wait(), interval)
            except asyncio.TimeoutError:
                pass
        if outcome.disconnected_at is None and gone.is_set():
            # a send failed first; confirm in the server's table
            await asyncio.wait_for(watcher, max(0.1, deadline - time.time()))
        watcher.cancel()
        if outcome.disconnected_at is None:
            outcome.how = "still connected at the end of the window"
            return outcome
        data, ending = await _drain(sock, 3.0)
        outcome.bytes_drained = len(data)
        frames_in = parse_ws_frames(data)
        outcome.close_code = frames_in.close_code
        outcome.close_reason = frames_in.close_reason
        outcome.how = (
            f"close frame {frames_in.close_code}"
            if frames_in.close_code is not None
            else f"no close frame ({ending})"
        )
        await _check_ws_resumes(endpoint, frames_in.messages, prompts, outcome)
    except Exception as exc:  # the part reports it rather than failing the suite
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    return outcome


async def _check_ws_resumes(
    endpoint: Endpoint, messages: Sequence[str], prompts: Sequence[str], outcome: StuckOutcome
) -> None:
    streams: dict[str, dict[str, Any]] = {}
    for message in messages:
        event = json.loads(message)
        if event.get("type") == "error" and event.get("stream") is None:
            outcome.refused += 1
            continue
        if event.get("type") == "start" and "ref" in event:
            streams[event["stream"]] = {
                "prompt": prompts[int(event["ref"]) % len(prompts)],
                "seqs": [0],
                "text": "",
                "ended": False,
            }
        elif event.get("stream") in streams:
            seen = streams[event["stream"]]
            seen["seqs"].append(int(event["seq"]))
            if event.get("type") == "delta":
                seen["text"] += event.get("content", "")
            seen["ended"] = seen["ended"] or event.get("type") in ("done", "error")
    outcome.streams_seen = len(streams)
    gate = asyncio.Semaphore(20)

    async def resume(stream_id: str, seen: dict[str, Any]) -> None:
        if seen["ended"]:  # delivered whole before the cut: nothing to resume
            outcome.complete_before_cut += 1
            account(outcome, seen["seqs"], seen["text"], seen["prompt"])
            return
        async with gate:
            try:
                seqs, text, error = await _resume_ws(endpoint, stream_id, seen["seqs"][-1])
            except Exception as exc:
                outcome.resume_failures.append(f"{type(exc).__name__}: {exc}")
                return
        if error is not None:
            outcome.resume_failures.append(error)
            return
        outcome.resumed += 1
        account(outcome, seen["seqs"] + seqs, seen["text"] + text, seen["prompt"])

    await asyncio.gather(*(resume(s, seen) for s, seen in streams.items()))


async def stuck_sse(
    endpoint: Endpoint,
    process: psutil.Process,
    plan: StuckPlan,
    prompt: str,
    deadline: float,
) -> StuckOutcome:
    """The SSE stuck reader (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    outcome = StuckOutcome("sse", started_at=time.time())
    helper = SSEConnection(endpoint)
    sock = _tiny_socket()
    try:
        # learn the new stream's id on a normal connection, then leave it to the stuck one
        events: Any = helper.events(sse_path(prompt, STUCK_MAX_TOKENS)).__aiter__()
        event_id, _data = await asyncio.wait_for(events.__anext__(), 30)
        await events.aclose()
        helper.abort()
        stream_id = (event_id or "").rpartition(":")[0]
        await loop.sock_connect(sock, (endpoint.host, endpoint.port))
        request = http_request(
            "GET",
            f"/sse?last_event_id={stream_id}:0",
            endpoint.host,
            endpoint.port,
            [("Accept", "text/event-stream")],
        )
        await loop.sock_sendall(sock, request * plan.pipelined)
        outcome.sent_messages = plan.pipelined
        client_port = sock.getsockname()[1]
        gone = asyncio.Event()
        await _watch(process, endpoint, client_port, outcome, deadline, gone)
        if outcome.disconnected_at is None:
            outcome.how = "still connected at the end of the window"
            return outcome
        data, ending = await _drain(sock, 3.0)
        outcome.bytes_drained = len(data)
        responses = parse_http_responses(data)
        last = responses[-1] if responses else None
        outcome.how = (
            f"{len(responses)} responses, the last "
            + ("ended" if last and last.complete else "cut short")
            + f" ({ending})"
            if last
            else f"nothing received ({ending})"
        )
        outcome.streams_seen = 1
        seqs: list[int] = [0]
        text = ""
        if last is not None and last.status == 200:
            for _id, data_line in SSEParser().feed(last.body):
                event = json.loads(data_line)
                seqs.append(int(event["seq"]))
                text += event.get("content", "") if event.get("type") == "delta" else ""
        try:
            resumed_seqs, resumed_text = await _resume_sse(endpoint, stream_id, seqs[-1])
        except Exception as exc:
            outcome.resume_failures.append(f"{type(exc).__name__}: {exc}")
            return outcome
        outcome.resumed = 1
        account(outcome, seqs + resumed_seqs, text + resumed_text, prompt)
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
        helper.abort()
    return outcome


async def _resume_sse(endpoint: Endpoint, stream_id: str, after: int) -> tuple[list[int], str]:
    connection = SSEConnection(endpoint)
    seqs: list[int] = []
    text = ""
    try:
        async for _id, data in connection.events(
            sse_path("resume", 1), last_event_id=f"{stream_id}:{after}"
        ):
            event = json.loads(data)
            seqs.append(int(event["seq"]))
            if event.get("type") == "delta":
                text += event.get("content", "")
    finally:
        await connection.close()
    return seqs, text
