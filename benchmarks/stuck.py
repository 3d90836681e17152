"""Stuck readers: a client that never reads, next to normal clients.

Per transport, two runs on fresh servers, each with ``N`` normal clients (50 in the
full preset) streaming completions back to back on their own connections:

* **baseline** -- the normal clients alone;
* **stuck** -- the same, plus one *stuck reader* started a second in. It sets a tiny
  ``SO_RCVBUF`` and never reads a byte after its handshake:

  - WebSocket: a hand-written client on a raw socket. It floods ``start`` messages
    (50 a second; the server may start up to ``--max-streams-per-socket`` streams for
    it) and every half second sends an unsolicited pong and a ping -- what a client
    that answers pings sends, since one that never reads cannot see the server's
    pings to answer them. Pongs must not keep a non-reader alive.
  - SSE: one stream, and on one connection many pipelined ``GET /sse`` requests that
    resume it from the start. A loopback socket's kernel buffers take about 2 MB even
    at the smallest receive buffer, more than one synthetic stream has (at most ~33 KB),
    so a stuck reader of one plain response would never make the server wait; the
    pipelined replays do, as a reader of a long answer or backlog would.

  The server is started with ``--max-pending-bytes`` (1 MiB, the default) and
  ``--write-timeout`` (a few seconds). The stuck reader counts as *disconnected*
  when the server process no longer holds its socket (seen in the server's own
  connection table, so no read is needed). Then the reader drains what reached its
  socket, notes how the server ended it (WebSocket close code, e.g. 4008; SSE: the
  response's end) and resumes every stream it learned about from its last event:
  *events lost* counts seqs it never got, and the texts must equal the model's.

Measured: time from the stuck reader's start to its disconnection; the server's
extra memory in the stuck run, beyond the streams the stuck reader started (peak
RSS growth minus the baseline's, minus its streams at the baseline's cost per
stream); the normal clients' p99 delivery delay against the baseline run's. Targets
from issue 8: disconnected within the deadline, at most 2 MiB extra, 0 events lost,
p99 within 2x.

A server without ``--max-pending-bytes`` / ``--write-timeout`` (it exits with a
usage error) is reported as *not supported by this server*; the stuck runs still
happen without the flags, for as long as the window, to show what that server does.

Run alone: ``python -m benchmarks stuck [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil
from tqdm import tqdm

from .clients import (
    Endpoint,
    SSEConnection,
    SSEParser,
    expected_text,
    open_websocket,
    prompts_with_tokens,
    sse_completion,
    sse_path,
    ws_completion,
)
from .config import SuiteConfig
from .servers import REPO_ROOT, ResourceSampler, ServerProcess, ServerSpec
from .stats import ratio, summarize

__all__ = [
    "StuckPlan",
    "PLANS",
    "parse_ws_frames",
    "parse_http_responses",
    "ws_frame",
    "stuck_scenario",
    "run_stuck",
    "summary_rows",
    "report_section",
]

MIB = 1 << 20
#: issue 8's targets
TARGET_EXTRA_MIB = 2.0
TARGET_DELAY_RATIO = 2.0
#: every stream's length, the stuck reader's and the normal clients' alike, so the
#: baseline's memory per stream is the cost of the stuck reader's streams too
STUCK_MAX_TOKENS = 200


@dataclass(frozen=True)
class StuckPlan:
    """Knobs of this part, per preset."""

    normal_clients: int
    window: float  # seconds each run lasts; the stuck reader must be dropped within it
    write_timeout: float  # passed as --write-timeout
    max_pending_bytes: int = MIB  # passed as --max-pending-bytes (the default)
    flood_per_second: float = 50.0
    pipelined: int = 400  # SSE: requests pipelined on the stuck connection
    tokens_per_second: float | None = None  # None: the suite's pace
    ws_ping_interval: float = 2.0  # so the server pings within the window


PLANS = {
    "tiny": StuckPlan(normal_clients=4, window=5.0, write_timeout=1.0, tokens_per_second=200.0),
    "quick": StuckPlan(normal_clients=20, window=18.0, write_timeout=2.0),
    "full": StuckPlan(normal_clients=50, window=30.0, write_timeout=5.0),
}


def plan_for(config: SuiteConfig) -> StuckPlan:
    return PLANS.get(config.name, PLANS["full"])


# -- pure wire helpers (no I/O) ------------------------------------------------------------


def ws_frame(opcode: int, payload: bytes, mask: bytes = b"\x00\x00\x00\x00") -> bytes:
    """One final, masked client frame (RFC 6455 5.2; clients must mask, 5.3)."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


@dataclass
class WSFrames:
    """What a server sent: its text messages, its close frame (if any), trailing bytes."""

    messages: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    trailing: int = 0  # bytes of an incomplete frame at the end


def parse_ws_frames(data: bytes) -> WSFrames:
    """Parse unmasked server frames (RFC 6455 5.2), reassembling fragmented messages;
    stops at a close frame or at an incomplete frame."""
    result = WSFrames()
    position = 0
    fragments: list[bytes] = []
    while position + 2 <= len(data):
        first, second = data[position], data[position + 1]
        opcode, length = first & 0x0F, second & 0x7F
        header = 2
        if length == 126:
            if position + 4 > len(data):
                break
            (length,) = struct.unpack_from("!H", data, position + 2)
            header = 4
        elif length == 127:
            if position + 10 > len(data):
                break
            (length,) = struct.unpack_from("!Q", data, position + 2)
            header = 10
        masked = bool(second & 0x80)  # servers never mask (5.1); clients always do
        if masked:
            header += 4
        if position + header + length > len(data):
            break
        payload = data[position + header : position + header + length]
        if masked:
            key = data[position + header - 4 : position + header]
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        position += header + length
        if opcode in (0x1, 0x2, 0x0):
            fragments.append(payload)
            if first & 0x80:
                result.messages.append(b"".join(fragments).decode("utf-8", "replace"))
                fragments = []
        elif opcode == 0x8:
            if len(payload) >= 2:
                (result.close_code,) = struct.unpack_from("!H", payload)
                result.close_reason = payload[2:].decode("utf-8", "replace")
            return result
    result.trailing = len(data) - position
    return result


@dataclass
class HTTPResponse:
    status: int
    body: bytes
    complete: bool


def parse_http_responses(data: bytes) -> list[HTTPResponse]:
    """Split pipelined HTTP/1.1 responses (chunked, Content-Length or none); the last
    may be cut short (``complete`` False)."""
    responses: list[HTTPResponse] = []
    position = 0
    while position < len(data):
        end = data.find(b"\r\n\r\n", position)
        if end < 0:
            break
        lines = data[position:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        position = end + 4
        body = bytearray()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            complete = False
            while True:
                line_end = data.find(b"\r\n", position)
                if line_end < 0:
                    break
                size = int(data[position:line_end].split(b";")[0] or b"0", 16)
                if size == 0:
                    trailer_end = data.find(b"\r\n", line_end + 2)
                    if trailer_end >= 0:
                        position = trailer_end + 2
                        complete = True
                    break
                if line_end + 2 + size + 2 > len(data):
                    body += data[line_end + 2 : line_end + 2 + size]
                    position = len(data)
                    break
                body += data[line_end + 2 : line_end + 2 + size]
                position = line_end + 2 + size + 2
            responses.append(HTTPResponse(status, bytes(body), complete))
            if not complete:
                break
        else:
            length = int(headers.get("content-length", "0"))
            body += data[position : position + length]
            complete = position + length <= len(data)
            position += length
            responses.append(HTTPResponse(status, bytes(body), complete))
    return responses


# -- watching the server ---------------------------------------------------------------


def _holds_connection(process: psutil.Process, server_port: int, client_port: int) -> bool:
    """Whether the server process still has the socket of ``client_port``'s connection."""
    for connection in process.net_connections(kind="tcp"):
        if (
            connection.laddr
            and connection.raddr
            and connection.laddr.port == server_port
            and connection.raddr.port == client_port
        ):
            return True
    return False


def _kernel_queue(server_port: int, client_port: int) -> int | None:
    """Bytes the kernel holds unsent on the server's side of the connection (/proc/net/tcp
    tx_queue), or None when the socket is gone."""
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            next(table)
            for line in table:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if (
                    int(local.split(":")[1], 16) == server_port
                    and int(remote.split(":")[1], 16) == client_port
                ):
                    return int(fields[4].split(":")[0], 16)
    except OSError:
        return None
    return None


# -- the stuck readers -------------------------------------------------------------------


@dataclass
class StuckOutcome:
    """What happened to one stuck reader."""

    transport: str
    started_at: float = 0.0
    disconnected_at: float | None = None
    how: str | None = None  # how the client saw the end: close code, response end, reset
    sent_messages: int = 0
    send_blocked: int = 0
    max_kernel_queue: int = 0
    queue_samples: list[tuple[float, int]] = field(default_factory=list)
    bytes_drained: int = 0
    close_code: int | None = None
    close_reason: str | None = None
    streams_seen: int = 0  # streams whose start event reached the reader
    refused: int = 0  # start messages answered with an error (e.g. too_many_streams)
    resumed: int = 0
    complete_before_cut: int = 0  # streams the reader had whole, so not resumed
    resume_failures: list[str] = field(default_factory=list)
    events_lost: int = 0
    events_duplicated: int = 0
    text_mismatches: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        seconds = (
            round(self.disconnected_at - self.started_at, 3)
            if self.disconnected_at is not None
            else None
        )
        # when the kernel's buffer for this reader was (nearly) full: from then on only
        # the server's own bounds can act
        full_at = next(
            (at for at, queue in self.queue_samples if queue >= 0.9 * self.max_kernel_queue),
            None,
        )
        after_full = (
            round(self.disconnected_at - full_at, 3)
            if full_at is not None and self.disconnected_at is not None and self.max_kernel_queue
            else None
        )
        return {
            "transport": self.transport,
            "disconnected": self.disconnected_at is not None,
            "seconds_to_disconnect": seconds,
            "seconds_to_kernel_full": (
                round(full_at - self.started_at, 3) if full_at is not None else None
            ),
            "seconds_after_kernel_full": after_full,
            "how": self.how,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
            "sent_messages": self.sent_messages,
            "send_blocked": self.send_blocked,
            "max_server_kernel_queue_kib": round(self.max_kernel_queue / 1024, 1),
            "bytes_drained": self.bytes_drained,
            "streams_seen": self.streams_seen,
            "refused": self.refused,
            "resumed": self.resumed,
            "complete_before_cut": self.complete_before_cut,
            "resume_failures": self.resume_failures[:3],
            "events_lost": self.events_lost,
            "events_duplicated": self.events_duplicated,
            "text_mismatches": self.text_mismatches,
            "error": self.error,
        }


def _tiny_socket() -> socket.socket:
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
        queue = _kernel_queue(endpoint.port, client_port)
        try:
            return queue, _holds_connection(process, endpoint.port, client_port)
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
        await loop.sock_sendall(
            sock,
            (
                f"GET /ws HTTP/1.1\r\nHost: {endpoint.host}:{endpoint.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode("ascii"),
        )
        head = b""
        while b"\r\n\r\n" not in head:  # the handshake is the only thing it reads
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode("latin-1"))
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
            _account(outcome, seen["seqs"], seen["text"], seen["prompt"])
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
        _account(outcome, seen["seqs"] + seqs, seen["text"] + text, seen["prompt"])

    await asyncio.gather(*(resume(s, seen) for s, seen in streams.items()))


def _account(outcome: StuckOutcome, seqs: Sequence[int], text: str, prompt: str) -> None:
    """Add one stream's losses (seqs never received) and duplicates to ``outcome``."""
    last = max(seqs) if seqs else -1
    outcome.events_lost += len(set(range(last + 1)) - set(seqs))
    outcome.events_duplicated += len(seqs) - len(set(seqs))
    if text != expected_text(prompt, STUCK_MAX_TOKENS):
        outcome.text_mismatches += 1


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
        request = (
            f"GET /sse?last_event_id={stream_id}:0 HTTP/1.1\r\n"
            f"Host: {endpoint.host}:{endpoint.port}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode("ascii")
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
        _account(outcome, seqs + resumed_seqs, text + resumed_text, prompt)
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


# -- the normal clients (a worker process) ---------------------------------------------


def _normal_worker(
    base_url: str,
    transport: str,
    clients: int,
    start_at: float,
    end_at: float,
    max_tokens: int,
) -> dict[str, Any]:
    """``clients`` clients, each streaming completions back to back on its own
    connection from ``start_at`` until ``end_at`` (wall clock)."""
    endpoint = Endpoint(base_url)
    prompts = prompts_with_tokens(clients * 4, max_tokens, "normal")

    async def client(index: int) -> tuple[list[float], int, int, list[str]]:
        await asyncio.sleep(max(0.0, start_at - time.time()) + 0.01 * index)
        delays: list[float] = []
        completions = errors = 0
        examples: list[str] = []
        sse_connection: SSEConnection | None = None
        websocket = None
        try:
            while time.time() < end_at:
                prompt = prompts[(index * 4 + completions) % len(prompts)]
                if transport == "sse":
                    record, sse_connection = await sse_completion(
                        endpoint, prompt, max_tokens, sse_connection
                    )
                else:
                    record, websocket = await ws_completion(endpoint, prompt, max_tokens, websocket)
                completions += 1
                delays += record.delivery_delays()
                if record.error or record.text != expected_text(prompt, max_tokens):
                    errors += 1
                    examples.append(record.error or "text differs from the model's")
        finally:
            if sse_connection is not None:
                await sse_connection.close()
            if websocket is not None:
                await websocket.close()
        return delays, completions, errors, examples

    async def everyone() -> list[tuple[list[float], int, int, list[str]]]:
        return list(await asyncio.gather(*(client(i) for i in range(clients))))

    results = asyncio.run(everyone())
    return {
        "delays": [d for r in results for d in r[0]],
        "completions": sum(r[1] for r in results),
        "errors": sum(r[2] for r in results),
        "error_examples": sorted({e for r in results for e in r[3]})[:3],
    }


# -- the scenario ----------------------------------------------------------------------


def _bounds_flags(plan: StuckPlan) -> list[str]:
    return [
        "--max-pending-bytes",
        str(plan.max_pending_bytes),
        "--write-timeout",
        str(plan.write_timeout),
    ]


def _start_server(command: list[str]) -> tuple[ServerProcess | None, str | None]:
    """Start ``command``; a usage error (exit 2) gives ``(None, its message)``."""
    server = ServerProcess(command)
    try:
        return server.start(), None
    except RuntimeError:
        if server.process is None or server.process.returncode != 2:
            raise
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    )
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=30, cwd=REPO_ROOT, env=env
    )
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    return None, lines[-1] if lines else f"exit status {completed.returncode}"


def _run_once(
    spec: ServerSpec,
    transport: str,
    config: SuiteConfig,
    plan: StuckPlan,
    pool: ProcessPoolExecutor,
    stuck: bool,
    bounded: bool,
) -> dict[str, Any]:
    pace = (
        plan.tokens_per_second if plan.tokens_per_second is not None else config.tokens_per_second
    )
    command = spec.command(pace, config.first_token_latency)
    command += ["--ws-ping-interval", str(plan.ws_ping_interval)]
    if bounded:
        command += _bounds_flags(plan)
    server = ServerProcess(command).start()
    try:
        endpoint = Endpoint(server.url)
        process = psutil.Process(server.pid)
        with ResourceSampler(server.pid) as sampler:
            time.sleep(0.3)
            idle = sampler.sample()
            start_at = time.time() + 0.5
            end_at = start_at + plan.window
            normal = pool.submit(
                _normal_worker,
                server.url,
                transport,
                plan.normal_clients,
                start_at,
                end_at,
                STUCK_MAX_TOKENS,
            )
            outcome: StuckOutcome | None = None
            if stuck:
                time.sleep(max(0.0, start_at + 1.0 - time.time()))
                prompts = prompts_with_tokens(64, STUCK_MAX_TOKENS, "stuck")
                if transport == "ws":
                    work = stuck_websocket(endpoint, process, plan, prompts, end_at - 1.0)
                else:
                    work = stuck_sse(endpoint, process, plan, prompts[0], end_at - 1.0)
                outcome = asyncio.run(work)
            loaded = normal.result(timeout=plan.window + 120)
            ended = time.time()
            retained = _store_streams(server.url)
    finally:
        server.stop()
    peak = sampler.peak_rss_between(start_at, ended)
    growth = (peak - idle.rss_bytes) if peak and idle else None
    return {
        "normal_clients": plan.normal_clients,
        "completions": loaded["completions"],
        "errors": loaded["errors"],
        "error_examples": loaded["error_examples"],
        "delivery_delay_ms": summarize(loaded["delays"], 1000.0),
        # near 100: everything on this machine competed for the cores, so delays say
        # as much about the machine as about the server
        "machine_cpu_percent": sampler.machine_cpu_percent_between(start_at, ended),
        "server_cpu_percent": sampler.cpu_percent_between(start_at, ended),
        "server_idle_rss_mib": round(idle.rss_bytes / MIB, 2) if idle else None,
        "server_peak_rss_mib": round(peak / MIB, 2) if peak else None,
        "rss_growth_mib": round(growth / MIB, 2) if growth is not None else None,
        "server_streams": retained,
        "stuck": outcome.as_dict() if outcome else None,
    }


def _store_streams(base_url: str) -> int | None:
    """How many streams the server keeps (``GET /healthz``'s ``streams``), if it says."""
    try:
        with urllib.request.urlopen(base_url + "healthz", timeout=10) as response:
            count = json.loads(response.read()).get("streams")
    except (OSError, ValueError):
        return None
    return count if isinstance(count, int) else None


def stuck_scenario(
    spec: ServerSpec, transport: str, config: SuiteConfig, pool: ProcessPoolExecutor
) -> dict[str, Any]:
    """Baseline and stuck runs over ``transport``, and the comparison of the two."""
    plan = plan_for(config)
    pace = (
        plan.tokens_per_second if plan.tokens_per_second is not None else config.tokens_per_second
    )
    probe, usage_error = _start_server(
        spec.command(pace, config.first_token_latency) + _bounds_flags(plan)
    )
    if probe is not None:
        probe.stop()
    bounded = usage_error is None
    baseline = _run_once(spec, transport, config, plan, pool, stuck=False, bounded=bounded)
    loaded = _run_once(spec, transport, config, plan, pool, stuck=True, bounded=bounded)
    outcome = loaded["stuck"] or {}
    # the streams the stuck reader made the server start: what the server keeps (every
    # stream is retained far longer than a run) minus the normal clients' completions;
    # failing that, the streams whose start event reached the stuck reader
    if loaded["server_streams"] is not None:
        streams = max(0, loaded["server_streams"] - loaded["completions"])
        counted_by = "server (GET /healthz)"
    else:
        streams = outcome.get("streams_seen") or 0
        counted_by = "stuck reader (start events it received)"
    per_stream = (
        baseline["rss_growth_mib"] / baseline["completions"]
        if baseline["rss_growth_mib"] is not None and baseline["completions"]
        else None
    )
    # the stuck run's growth, less the baseline's and less the cost of the streams it
    # had beyond the baseline's (the stuck reader's, and any difference in normal ones)
    extra = (
        loaded["rss_growth_mib"]
        - baseline["rss_growth_mib"]
        - per_stream * (streams + loaded["completions"] - baseline["completions"])
        if per_stream is not None and loaded["rss_growth_mib"] is not None
        else None
    )
    p99_ratio = ratio(loaded["delivery_delay_ms"]["p99"], baseline["delivery_delay_ms"]["p99"])
    deadline = plan.write_timeout
    return {
        "transport": transport,
        "supported": bounded,
        "note": None if bounded else f"not supported by this server ({usage_error})",
        "flags": _bounds_flags(plan) if bounded else [],
        "window_s": plan.window,
        "write_timeout_s": plan.write_timeout,
        "max_pending_bytes": plan.max_pending_bytes,
        "baseline": baseline,
        "with_stuck": loaded,
        "seconds_to_disconnect": outcome.get("seconds_to_disconnect"),
        "extra_memory_mib": round(extra, 2) if extra is not None else None,
        "memory_per_stream_kib": round(per_stream * 1024, 1) if per_stream is not None else None,
        "stuck_streams": streams,
        "stuck_streams_counted_by": counted_by,
        "events_lost": (
            outcome.get("events_lost")
            if outcome.get("resumed") or outcome.get("complete_before_cut")
            else None
        ),
        "p99_ratio": p99_ratio,
        "meets": {
            "disconnected": bool(outcome.get("disconnected")),
            "extra_memory": extra is not None and extra <= TARGET_EXTRA_MIB,
            "nothing_lost": bool(outcome.get("resumed") or outcome.get("complete_before_cut"))
            and outcome.get("events_lost") == 0
            and outcome.get("text_mismatches") == 0
            and not outcome.get("resume_failures"),
            "p99_within_2x": p99_ratio is not None and p99_ratio <= TARGET_DELAY_RATIO,
        },
        "deadline_note": (
            f"--write-timeout {deadline:g} s after the kernel's buffers filled" if bounded else None
        ),
    }


def run_stuck(config: SuiteConfig, spec: ServerSpec, progress: bool = True) -> dict[str, Any]:
    """Both transports' stuck-reader scenarios against ``spec`` (twinstream)."""
    results: dict[str, Any] = {"server": spec.name, "transports": {}}
    bar = tqdm(total=len(spec.transports), desc="stuck", unit="transport", disable=not progress)
    context = multiprocessing.get_context("spawn")
    with bar, ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(os.getpid).result()  # start the worker before anything is timed
        for transport in spec.transports:
            bar.set_postfix_str(transport)
            results["transports"][transport] = stuck_scenario(spec, transport, config, pool)
            bar.update()
    return results


# -- report ---------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_rows(results: dict[str, Any]) -> list[tuple[str, Any, Any, Any, Any]]:
    """Rows for the headline table (twinstream's two columns only: the reference
    servers have no write bounds to test and cannot resume)."""
    data = results.get("stuck", {}).get("transports", {})
    if not data:
        return []

    def both(get: Any) -> tuple[Any, Any]:
        return tuple(get(data[t]) if t in data else None for t in ("sse", "ws"))  # type: ignore[return-value]

    def seconds(d: dict[str, Any]) -> Any:
        if not d["supported"]:
            return "not supported"
        value = d["with_stuck"]["stuck"]["seconds_after_kernel_full"]
        if value is None:
            return f"not within {d['window_s']:g} s"
        return f"{_fmt(value)} (deadline {d['write_timeout_s']:g})"

    def text(value: Any, digits: int = 1) -> str | None:
        # text, so the headline table shows no WS / SSE ratio for these rows
        return None if value is None else _fmt(value, digits)

    rows = [
        (
            "Stuck reader: dropped, s after its kernel buffer filled (deadline: --write-timeout)",
            *both(seconds),
        ),
        (
            "Stuck reader: extra server memory (MiB; target ≤2)",
            *both(lambda d: text(d["extra_memory_mib"], 2)),
        ),
        ("Stuck reader: events lost on resume", *both(lambda d: text(d["events_lost"]))),
        (
            "Stuck reader: normal clients' p99 delay, with / without (target ≤2×)",
            *both(lambda d: text(d["p99_ratio"], 2)),
        ),
    ]
    return [(label, sse, ws, None, None) for label, sse, ws in rows]


def report_section(results: dict[str, Any]) -> str:
    """The report's section for this part (empty when it did not run)."""
    data = results.get("stuck", {}).get("transports", {})
    if not data:
        return ""
    header = [
        "Transport",
        "Bounds",
        "Disconnected after s",
        "Kernel buffer full after s",
        "How it ended",
        "Streams started / seen / resumed",
        "Lost",
        "Dup.",
        "RSS growth MiB (base / stuck)",
        "Extra MiB",
        "p50 ms (base / stuck)",
        "p99 ms (base / stuck)",
        "Ratio",
        "Machine busy % (base / stuck)",
    ]
    rows = []
    notes = []
    for transport, d in data.items():
        base, loaded = d["baseline"], d["with_stuck"]
        s = loaded["stuck"] or {}
        rows.append(
            [
                transport,
                " ".join(d["flags"]) if d["supported"] else "not supported",
                _fmt(s.get("seconds_to_disconnect"), 2),
                f"{_fmt(s.get('seconds_to_kernel_full'), 2)} "
                f"({_fmt(s.get('max_server_kernel_queue_kib'), 0)} KiB)",
                _fmt(s.get("how")),
                f"{d['stuck_streams']} / {s.get('streams_seen', 0)} / {s.get('resumed', 0)}",
                _fmt(d["events_lost"]),
                _fmt(s.get("events_duplicated")),
                f"{_fmt(base['rss_growth_mib'])} / {_fmt(loaded['rss_growth_mib'])}",
                _fmt(d["extra_memory_mib"], 2),
                f"{_fmt(base['delivery_delay_ms']['p50'], 2)} / "
                f"{_fmt(loaded['delivery_delay_ms']['p50'], 2)}",
                f"{_fmt(base['delivery_delay_ms']['p99'])} / "
                f"{_fmt(loaded['delivery_delay_ms']['p99'])}",
                _fmt(d["p99_ratio"], 2),
                f"{_fmt(base['machine_cpu_percent'], 0)} / "
                f"{_fmt(loaded['machine_cpu_percent'], 0)}",
            ]
        )
        if d.get("note"):
            notes.append(f"{transport}: {d['note']}")
        if s.get("error"):
            notes.append(f"{transport}: the stuck reader failed: {s['error']}")
        if s.get("resume_failures"):
            notes.append(f"{transport}: resumes failed: {'; '.join(s['resume_failures'])}")
        for name, run in (("baseline", base), ("stuck", loaded)):
            if run["errors"]:
                notes.append(
                    f"{transport} {name}: {run['errors']} of {run['completions']} normal "
                    f"completions failed: {'; '.join(run['error_examples'])}"
                )
    any_plan = next(iter(data.values()))
    intro = (
        f"{any_plan['baseline']['normal_clients']} normal clients stream completions back "
        f"to back for {any_plan['window_s']:g} s, alone (base) and next to one stuck reader "
        "(tiny receive buffer, never reads; WebSocket: floods `start`, sends unsolicited "
        f"pongs and pings; SSE: pipelined replays of its stream); every stream "
        f"{STUCK_MAX_TOKENS} tokens. *Disconnected* = the server no longer holds its "
        "socket; *kernel buffer full* = when the server's unsent kernel queue for it "
        "stopped growing (from then on only the server's own bounds act). *How it ended* "
        "is what the reader found when it finally read (a close frame queued behind data "
        "it never read may never arrive). *Extra* = stuck-run RSS growth − base RSS "
        "growth − the stuck reader's streams at the base run's cost per stream. Targets "
        "(issue 8): disconnected within the deadline, ≤2 MiB extra, 0 lost, p99 ≤2×."
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n\n".join(
        ["## Stuck readers", intro, "\n".join(lines)]
        + (["\n".join(f"- {n}" for n in notes)] if notes else [])
    )
