"""Reconnection: streams cut mid-way, resumed, checked event by event.

Every stream runs through a :class:`~benchmarks.proxy.CountingProxy` and is
cut several times at planned points (after the client has processed a given
``seq``), taking three ways in turn:

* **network** -- the proxy drops both of its sockets (RST): to the client this
  is the server or the network going away without a word;
* **client** -- the client aborts its own socket, as a browser tab losing its
  network would;
* **server** -- the server closes the connection itself (twinstream's
  ``POST /debug/drop?stream=S``; skipped when the server does not serve it).

After a network or server cut the client keeps reading until it notices, as a
real one would. The client then reconnects at once and resumes: SSE with the same URL and
``Last-Event-ID: S:seq`` (what ``EventSource`` does, minus the server's
``retry:`` wait), WebSocket with a new socket and ``{"type":"resume"}``.

Measured per transport and way of cutting: **time until events flow again** (from the
cut to the first event received on the new connection), **reconnect time**
(cut to the new connection ready: SSE response head received, WebSocket
handshake done), **resumed event delay** (how late the first
event on the new connection arrived after the server produced it: what the
cut cost the reader), and, over the whole stream, **events lost**
(seqs never received) and **events duplicated** (seqs received more than
once), plus whether the text equals the model's deterministic output. Lost and
duplicated must be 0. Only twinstream is measured: the peer servers keep no
event log and cannot resume.

Run alone: ``python -m benchmarks reconnect [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm
from websockets.asyncio.client import ClientConnection

from .clients import (
    Endpoint,
    HTTPStatusError,
    SSEConnection,
    expected_text,
    open_websocket,
    post,
    prompts_with_tokens,
    run_with_deadline,
    start_or_resume,
)
from .clients import sse_path as new_stream_path
from .config import SuiteConfig
from .proxy import CountingProxy
from .servers import TWINSTREAM, ServerProcess, ServerSpec
from .stats import summarize

__all__ = ["Cut", "CutStream", "plan_cuts", "run_reconnect"]

#: who cuts: the network (the proxy drops both sockets), the client (it aborts its own
#: socket), the server (``POST /debug/drop``: the server closes the connection itself)
SIDES = ("network", "client", "server")


@dataclass
class Cut:
    side: str
    after_seq: int  # cut once the client has processed this seq
    cut_at: float = 0.0
    connection: int = 0  # the connection number it cut
    reconnected_at: float | None = None
    flowing_at: float | None = None
    #: how late the first event on the new connection was (receive time - its ``t``)
    resumed_event_delay: float | None = None


@dataclass
class CutStream:
    """One stream's life through its cuts."""

    transport: str
    prompt: str
    max_tokens: int
    plan: list[Cut]
    stream_id: str | None = None
    receipts: list[int] = field(default_factory=list)  # every seq received, in order
    contents: dict[int, str] = field(default_factory=dict)
    final_seq: int | None = None
    finish_reason: str | None = None
    connections: int = 0
    error: str | None = None
    _next_cut: int = 0
    _pending: Cut | None = None
    _last_event_id: str | None = None

    @property
    def last_seq(self) -> int:
        return self.receipts[-1] if self.receipts else -1

    @property
    def cuts_made(self) -> list[Cut]:
        return self.plan[: self._next_cut]

    def connected(self) -> None:
        self.connections += 1
        if (
            self._pending is not None
            and self._pending.reconnected_at is None
            and self.connections > self._pending.connection
        ):
            self._pending.reconnected_at = time.time()

    def receive(self, event: dict[str, Any], event_id: str | None) -> Cut | None:
        """Record one event; return the cut to make now, if one is due."""
        now = time.time()
        if self._pending is not None and self.connections > self._pending.connection:
            # the first event on a new connection (events still arriving on the cut
            # one were in flight before the cut and do not count as recovery)
            self._pending.flowing_at = now
            if event.get("t"):
                self._pending.resumed_event_delay = now - float(event["t"])
            self._pending = None
        seq = int(event["seq"])
        self.receipts.append(seq)
        self._last_event_id = event_id
        if self.stream_id is None:
            self.stream_id = event.get("stream")
        if event.get("type") == "delta":
            self.contents.setdefault(seq, str(event.get("content", "")))
        if event.get("type") in ("done", "error"):
            self.final_seq = seq
            self.finish_reason = str(event.get("finish_reason") or event.get("code"))
            return None
        if self._next_cut < len(self.plan) and seq >= self.plan[self._next_cut].after_seq:
            cut = self.plan[self._next_cut]
            self._next_cut += 1
            cut.cut_at = time.time()
            cut.connection = self.connections
            self._pending = cut
            return cut
        return None

    @property
    def finished(self) -> bool:
        return self.final_seq is not None

    def lost(self) -> int:
        if self.final_seq is None:
            return 0 if not self.receipts else max(self.receipts) + 1 - len(set(self.receipts))
        return len(set(range(self.final_seq + 1)) - set(self.receipts))

    def duplicated(self) -> int:
        return len(self.receipts) - len(set(self.receipts))

    def text(self) -> str:
        return "".join(self.contents[seq] for seq in sorted(self.contents))


def plan_cuts(
    rng: random.Random,
    max_tokens: int,
    cuts: int,
    first_side: int,
    sides: Sequence[str] = SIDES,
) -> list[Cut]:
    """``cuts`` distinct cut points among the stream's deltas (seq 1..max_tokens-1),
    taking ``sides`` in turn."""
    points = sorted(rng.sample(range(1, max_tokens), min(cuts, max_tokens - 1)))
    return [
        Cut(side=sides[(first_side + i) % len(sides)], after_seq=p) for i, p in enumerate(points)
    ]


async def server_drop_supported(endpoint: Endpoint) -> bool:
    """Whether the server serves ``POST /debug/drop`` (an unknown stream then answers
    ``stream_not_found``, not "no such endpoint")."""
    try:
        status, body = await post(endpoint, "/debug/drop?stream=benchmarkprobe00")
    except OSError:
        return False
    return status == 404 and b"stream_not_found" in body


class Cutter:
    """Makes cuts: through the proxy, by the client, or by asking the server."""

    def __init__(self, proxy: CountingProxy, server: Endpoint) -> None:
        self.proxy = proxy
        self.server = server
        self._requests: set[asyncio.Task[tuple[int, bytes]]] = set()

    def cut(self, cut: Cut, stream: CutStream, local_port: int, abort_own: Any) -> bool:
        """Make ``cut``; return True when the client should stop reading this connection
        (otherwise it keeps reading until it notices, as a real client would)."""
        if cut.side == "client":
            abort_own()
            return True
        if cut.side == "network":
            self.proxy.cut(local_port)
            return False
        request = asyncio.ensure_future(post(self.server, f"/debug/drop?stream={stream.stream_id}"))
        self._requests.add(request)
        request.add_done_callback(self._requests.discard)
        return False

    async def wait(self) -> None:
        if self._requests:
            await asyncio.gather(*self._requests, return_exceptions=True)


async def _sse_stream(cutter: Cutter, endpoint: Endpoint, stream: CutStream) -> None:
    attempts = 0
    while not stream.finished and attempts <= len(stream.plan) + 5:
        attempts += 1
        connection = SSEConnection(endpoint)
        try:
            last_id = stream._last_event_id
            path = new_stream_path(stream.prompt, stream.max_tokens)
            got_any = False

            def responded(_status: int) -> None:
                # connected = the response head arrived (WebSocket: the handshake is done)
                stream.connected()

            async for event_id, data in connection.events(path, last_id, responded):
                got_any = True
                cut = stream.receive(json.loads(data), event_id)
                if stream.finished:
                    break
                if cut is not None and cutter.cut(
                    cut, stream, connection.local_port, connection.abort
                ):
                    break
            else:
                if not got_any and last_id is not None and not stream.finished:
                    # 204: the server says everything was delivered already
                    stream.error = "204 before the terminal event was received"
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the connection died: resume
        except HTTPStatusError as exc:
            stream.error = str(exc)
            return
        finally:
            connection.abort()
    if not stream.finished:
        stream.error = stream.error or "gave up reconnecting"


async def _ws_stream(cutter: Cutter, endpoint: Endpoint, stream: CutStream) -> None:
    attempts = 0
    while not stream.finished and attempts <= len(stream.plan) + 5:
        attempts += 1
        websocket: ClientConnection | None = None
        try:
            websocket = await open_websocket(endpoint)
            stream.connected()
            request = start_or_resume(
                stream.stream_id, stream.prompt, stream.max_tokens, stream.last_seq
            )
            await websocket.send(json.dumps(request))
            local_port = websocket.local_address[1]
            async for message in websocket:
                event = json.loads(message)
                if event.get("stream") is None and event.get("type") == "error":
                    stream.error = f"{event.get('code')}: {event.get('message')}"
                    return
                cut = stream.receive(event, None)
                if stream.finished:
                    break
                if cut is not None and cutter.cut(
                    cut, stream, local_port, websocket.transport.abort
                ):
                    break
        except Exception:  # ConnectionClosed, OSError: resume
            pass
        finally:
            if websocket is not None:
                websocket.transport.abort()
    if not stream.finished:
        stream.error = stream.error or "gave up reconnecting"


def _summarize(streams: Sequence[CutStream], side: str | None = None) -> dict[str, Any]:
    cuts = [c for s in streams for c in s.cuts_made if side is None or c.side == side]
    to_flow = [
        c.flowing_at - c.cut_at
        for c in cuts
        if c.flowing_at is not None and c.reconnected_at is not None
    ]
    reconnect = [c.reconnected_at - c.cut_at for c in cuts if c.reconnected_at is not None]
    lateness = [c.resumed_event_delay for c in cuts if c.resumed_event_delay is not None]
    return {
        "cuts": len(cuts),
        "resumed": len(to_flow),
        "time_to_flow_ms": summarize(to_flow, 1000.0),
        "reconnect_ms": summarize(reconnect, 1000.0),
        "resumed_event_delay_ms": summarize(lateness, 1000.0),
    }


def measure_transport(streams: Sequence[CutStream]) -> dict[str, Any]:
    return {
        "streams": len(streams),
        "finished": sum(1 for s in streams if s.finished),
        "errors": sum(1 for s in streams if s.error),
        "error_examples": sorted({s.error for s in streams if s.error})[:3],
        "connections": sum(s.connections for s in streams),
        "events_received": sum(len(s.receipts) for s in streams),
        "events_expected": sum((s.final_seq or 0) + 1 for s in streams),
        "lost": sum(s.lost() for s in streams),
        "duplicated": sum(s.duplicated() for s in streams),
        "text_mismatches": sum(
            1 for s in streams if s.text() != expected_text(s.prompt, s.max_tokens)
        ),
        "all": _summarize(streams),
        "by_side": {
            side: _summarize(streams, side)
            for side in SIDES
            if any(c.side == side for s in streams for c in s.plan)
        },
    }


async def _run_all(
    endpoint: Endpoint, config: SuiteConfig, progress: tqdm | None
) -> tuple[dict[str, list[CutStream]], tuple[str, ...]]:
    rng = random.Random(config.seed)
    prompts = prompts_with_tokens(config.reconnect_streams, config.reconnect_max_tokens, "cut")
    sides = SIDES if await server_drop_supported(endpoint) else ("network", "client")
    async with CountingProxy(endpoint.host, endpoint.port) as proxy:
        via_proxy = endpoint.with_port(proxy.port)
        cutter = Cutter(proxy, endpoint)
        streams: dict[str, list[CutStream]] = {"sse": [], "ws": []}
        limits = {t: asyncio.Semaphore(max(1, config.reconnect_concurrency)) for t in streams}

        async def limited(transport: str, stream: CutStream) -> None:
            run = _sse_stream if transport == "sse" else _ws_stream
            async with limits[transport]:
                await run(cutter, via_proxy, stream)

        tasks = []
        for index, prompt in enumerate(prompts):
            for transport in ("sse", "ws"):
                stream = CutStream(
                    transport,
                    prompt,
                    config.reconnect_max_tokens,
                    plan_cuts(
                        rng,
                        config.reconnect_max_tokens,
                        config.reconnect_cuts,
                        index % len(sides),
                        sides,
                    ),
                )
                streams[transport].append(stream)
                tasks.append(asyncio.ensure_future(limited(transport, stream)))
        for done in asyncio.as_completed(tasks):
            await done
            if progress is not None:
                progress.update()
        await cutter.wait()
        return streams, sides


def run_reconnect(
    config: SuiteConfig,
    spec: ServerSpec = TWINSTREAM,
    url: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Cut and resume ``config.reconnect_streams`` streams per transport, both transports
    at once, at most ``config.reconnect_concurrency`` streams of each in flight."""
    server = (
        None
        if url
        else ServerProcess(
            spec.command(config.tokens_per_second, config.first_token_latency)
        ).start()
    )
    try:
        endpoint = Endpoint(url or (server.url if server else ""))
        with tqdm(
            total=2 * config.reconnect_streams,
            desc="reconnect",
            unit="stream",
            disable=not progress,
            leave=False,
        ) as bar:
            cpu_before, wall_before = time.process_time(), time.monotonic()
            streams, sides = run_with_deadline(
                _run_all(endpoint, config, bar),
                120 + 60 * config.reconnect_streams,
                "reconnection streams",
            )
            client_cpu_percent = round(
                100 * (time.process_time() - cpu_before) / (time.monotonic() - wall_before), 1
            )
    finally:
        if server is not None:
            server.stop()
    return {
        "server": spec.name,
        "cuts_per_stream": config.reconnect_cuts,
        "concurrency": config.reconnect_concurrency,
        "sides": list(sides),
        # the proxy and the clients run in this process: if it is busy, recovery times grow
        "client_and_proxy_cpu_percent": client_cpu_percent,
        "max_tokens": config.reconnect_max_tokens,
        "transports": {t: measure_transport(s) for t, s in streams.items()},
    }
