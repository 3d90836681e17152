"""Lean asyncio clients for both transports, built to record timings, not to be pretty.

* :class:`SSEConnection` -- a raw HTTP/1.1 reader on ``asyncio`` streams: one
  ``GET /sse`` at a time, chunked bodies, keep-alive reuse, ``Last-Event-ID``.
  Cheap enough that a few processes can hold 1,000 streams. Its requests and
  response heads go through :mod:`benchmarks.rawwire`, as :func:`post`'s do.
* WebSocket -- the ``websockets`` library's asyncio client (optionally with
  permessage-deflate).

Every event received is stamped with the client's wall clock (``time.time()``),
the same clock the server stamps ``t`` with (for a ``delta``: when the model
released the token), so ``received - t`` is the event's delivery delay.
:class:`StreamRecord` holds what one completion looked like.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from clients.sse import SSEDecoder
from server.backends.synthetic import synthetic_tokens

from .rawwire import (
    HEAD_END,
    http_request,
    parse_chunk_size,
    parse_response_head,
    response_status,
)

__all__ = [
    "Endpoint",
    "StreamRecord",
    "SSEParser",
    "SSEConnection",
    "HTTPStatusError",
    "open_websocket",
    "sse_completion",
    "ws_completion",
    "prompts_with_tokens",
    "expected_text",
    "sse_path",
    "run_with_deadline",
    "one_completion",
    "post",
    "live_window",
]


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens: ``http://HOST:PORT/``."""

    base_url: str

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.base_url).port or 80

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def with_port(self, port: int) -> Endpoint:
        return Endpoint(f"http://{self.host}:{port}/")


@dataclass
class StreamRecord:
    """One completion as a client saw it.

    ``began`` is when the client started working on it: before connecting for a
    cold start, before sending the request on a reused connection (warm).
    The four event lists are parallel, one entry per event received.
    """

    transport: str
    prompt: str
    max_tokens: int
    cold: bool
    began: float = 0.0
    stream_id: str | None = None
    kinds: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    produced: list[float] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    error: str | None = None

    def add(self, event: dict[str, Any], received: float) -> None:
        self.kinds.append(str(event.get("type")))
        self.seqs.append(int(event.get("seq") or 0))
        self.produced.append(float(event.get("t") or 0.0))
        self.received.append(received)
        if event.get("type") == "delta":
            self.text += str(event.get("content", ""))
        elif event.get("type") == "done":
            self.finish_reason = str(event.get("finish_reason"))
        elif event.get("type") == "error":
            self.error = f"{event.get('code')}: {event.get('message')}"
        if self.stream_id is None and event.get("stream"):
            self.stream_id = str(event["stream"])

    @property
    def complete(self) -> bool:
        return self.finish_reason is not None and self.error is None

    @property
    def delta_times(self) -> list[float]:
        return [r for k, r in zip(self.kinds, self.received) if k == "delta"]

    @property
    def delta_count(self) -> int:
        return self.kinds.count("delta")

    def time_to_first(self, kind: str) -> float | None:
        """Seconds from ``began`` to the first event of ``kind`` (``start``/``delta``)."""
        for k, r in zip(self.kinds, self.received):
            if k == kind:
                return r - self.began
        return None

    def inter_token_gaps(self) -> list[float]:
        times = self.delta_times
        return [later - earlier for earlier, later in zip(times, times[1:])]

    def delivery_delays(self) -> list[float]:
        return [r - t for r, t in zip(self.received, self.produced) if t > 0]


class HTTPStatusError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class SSEParser:
    """Incremental text/event-stream parser: :class:`clients.sse.SSEDecoder` (the
    project's one WHATWG decoder) with its events as ``(id, data)`` pairs.

    :meth:`feed` takes raw bytes and returns the events completed by them; ``id``
    is the stream's last event id, ``None`` before any. A partial event stays
    buffered (and is dropped with the parser if the connection dies, as a browser
    would)."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()

    @property
    def last_event_id(self) -> str | None:
        return self._decoder.last_event_id or None

    def feed(self, chunk: bytes) -> list[tuple[str | None, str]]:
        return [(event.id or None, event.data) for event in self._decoder.feed(chunk)]


class SSEConnection:
    """One HTTP/1.1 connection that can carry several ``GET /sse`` one after another."""

    def __init__(self, endpoint: Endpoint, accept_gzip: bool = False) -> None:
        self.endpoint = endpoint
        #: send ``Accept-Encoding: gzip`` and inflate a gzip response as it arrives
        self.accept_gzip = accept_gzip
        self.content_encoding = ""  # of the last response
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reusable = False
        self.local_port = 0

    @property
    def connected(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.endpoint.host, self.endpoint.port, limit=1 << 20
        )
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.local_port = sock.getsockname()[1]

    def abort(self) -> None:
        """Drop the connection at once (RST), as a client losing its network would."""
        if self.writer is not None:
            self.writer.transport.abort()
        self.reusable = False

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.writer = None
        self.reusable = False

    async def events(
        self,
        path: str,
        last_event_id: str | None = None,
        on_response: Callable[[int], None] | None = None,
        body: bytes | None = None,
    ) -> AsyncIterator[tuple[str | None, str]]:
        """Send ``GET path`` (``POST`` with a JSON ``body``) and yield ``(id, data)`` for
        each event of the response.

        ``on_response(status)`` is called once the response head has arrived.
        Raises :class:`HTTPStatusError` for a status other than 200 (``204`` is
        "nothing more to send": the generator simply ends)."""
        if not self.connected:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        self.reusable = False
        request_headers = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache")]
        if last_event_id is not None:
            request_headers.append(("Last-Event-ID", last_event_id))
        if self.accept_gzip:
            request_headers.append(("Accept-Encoding", "gzip"))
        if body is not None:
            request_headers.append(("Content-Type", "application/json"))
            request_headers.append(("Content-Length", str(len(body))))
        method = "GET" if body is None else "POST"
        self.writer.write(
            http_request(method, path, self.endpoint.host, self.endpoint.port, request_headers)
            + (body or b"")
        )
        response = parse_response_head(await self.reader.readuntil(HEAD_END))
        status, headers = response.status, response.headers
        if on_response is not None:
            on_response(status)
        keep_alive = response.keep_alive
        self.content_encoding = headers.get("content-encoding", "").lower()
        parser = SSEParser()
        decode: Callable[[bytes], bytes] = bytes
        if self.content_encoding == "gzip" and status == 200:
            # a sync-flushed gzip stream: each chunk inflates to whole events at once
            decode = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
        if response.chunked:
            while True:
                # the size line with its CRLF (int() ignores it; a bare CRLF still fails)
                size = parse_chunk_size(await self.reader.readuntil(b"\r\n"))
                if size == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    break
                chunk = await self.reader.readexactly(size + 2)
                if status == 200:
                    for event in parser.feed(decode(chunk[:-2])):
                        yield event
                else:
                    raise HTTPStatusError(status, chunk[:-2])
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
            if status not in (200, 204):
                raise HTTPStatusError(status, body)
            for event in parser.feed(decode(body)):
                yield event
        elif status == 204 or status == 304:
            pass
        else:  # body delimited by the connection closing
            keep_alive = False
            while chunk := await self.reader.read(65536):
                if status != 200:
                    raise HTTPStatusError(status, chunk)
                for event in parser.feed(decode(chunk)):
                    yield event
        self.reusable = keep_alive
        if not keep_alive:
            await self.close()


def sse_path(prompt: str, max_tokens: int) -> str:
    return f"/sse?prompt={quote(prompt)}&max_tokens={max_tokens}"


async def sse_completion(
    endpoint: Endpoint,
    prompt: str,
    max_tokens: int,
    connection: SSEConnection | None = None,
    compression: bool = False,
) -> tuple[StreamRecord, SSEConnection]:
    """Run one completion over SSE. Reuses ``connection`` when it is kept alive
    (a warm start), else opens a new one (a cold start, like ``EventSource``);
    ``compression`` offers gzip (the server may decline)."""
    cold = connection is None or not connection.reusable or not connection.connected
    if connection is None or cold:
        if connection is not None:
            await connection.close()
        connection = SSEConnection(endpoint, accept_gzip=compression)
    record = StreamRecord("sse", prompt, max_tokens, cold=cold, began=time.time())
    try:
        # read to the end of the response (after done), so the connection can be reused
        async for _event_id, data in connection.events(sse_path(prompt, max_tokens)):
            record.add(json.loads(data), time.time())
    except (OSError, asyncio.IncompleteReadError, HTTPStatusError, ValueError) as exc:
        record.error = record.error or f"{type(exc).__name__}: {exc}"
        connection.abort()
    return record, connection


def start_or_resume(
    stream_id: str | None, prompt: str, max_tokens: int, last_seq: int
) -> dict[str, Any]:
    """The WebSocket message that starts a stream, or resumes it after ``last_seq``."""
    if stream_id is None:
        return {"type": "start", "prompt": prompt, "max_tokens": max_tokens, "ref": 1}
    return {"type": "resume", "stream": stream_id, "after": last_seq}


async def open_websocket(
    endpoint: Endpoint, compression: bool = False, path: str = "/ws"
) -> ClientConnection:
    """Open ``path`` (``/ws``); ``compression`` offers permessage-deflate (the server may
    decline)."""
    return await ws_connect(
        f"ws://{endpoint.host}:{endpoint.port}{path}",
        compression="deflate" if compression else None,
        max_size=None,
        ping_interval=None,
        open_timeout=30,
        close_timeout=2,
    )


async def ws_completion(
    endpoint: Endpoint,
    prompt: str,
    max_tokens: int,
    websocket: ClientConnection | None = None,
    compression: bool = False,
) -> tuple[StreamRecord, ClientConnection | None]:
    """Run one completion over a WebSocket: reuse ``websocket`` (warm) or open one (cold)."""
    record = StreamRecord("ws", prompt, max_tokens, cold=websocket is None, began=time.time())
    try:
        if websocket is None:
            websocket = await open_websocket(endpoint, compression)
        await websocket.send(
            json.dumps({"type": "start", "prompt": prompt, "max_tokens": max_tokens, "ref": 1})
        )
        async for message in websocket:
            received = time.time()
            event = json.loads(message)
            if record.stream_id is not None and event.get("stream") != record.stream_id:
                continue  # another stream on this socket
            record.add(event, received)
            if event.get("type") in ("done", "error"):
                break
        else:
            record.error = record.error or "socket closed before the stream ended"
    except Exception as exc:  # OSError, bad JSON, websockets.ConnectionClosed and friends
        record.error = f"{type(exc).__name__}: {exc}"
        websocket = None
    return record, websocket


#: The most tokens the synthetic model writes for one prompt (40..220, by the prompt).
MOST_SYNTHETIC_TOKENS = 220


def prompts_with_tokens(count: int, min_tokens: int, tag: str = "bench") -> list[str]:
    """``count`` distinct prompts whose synthetic completion has at least ``min_tokens``
    tokens (the synthetic model writes 40..220 tokens depending on the prompt)."""
    if min_tokens > MOST_SYNTHETIC_TOKENS:
        raise ValueError(
            f"the synthetic model writes at most {MOST_SYNTHETIC_TOKENS} tokens per prompt"
        )
    prompts: list[str] = []
    index = 0
    while len(prompts) < count:
        prompt = f"{tag} prompt {index}: tell me about streaming"
        if len(synthetic_tokens(prompt)) >= min_tokens:
            prompts.append(prompt)
        index += 1
    return prompts


def expected_text(prompt: str, max_tokens: int) -> str:
    """What the deterministic synthetic model writes for ``prompt``."""
    return "".join(synthetic_tokens(prompt)[:max_tokens])


T = TypeVar("T")


def run_with_deadline(work: Coroutine[Any, Any, T], seconds: float, what: str) -> T:
    """``asyncio.run(work)``, but a stuck server fails the part instead of hanging it."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(work, seconds)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{what} did not finish within {seconds:.0f} s") from None

    return asyncio.run(bounded())


async def one_completion(
    endpoint: Endpoint, transport: str, prompt: str, max_tokens: int
) -> StreamRecord:
    """One cold completion over ``transport``, its connection closed after it."""
    if transport == "sse":
        record, connection = await sse_completion(endpoint, prompt, max_tokens)
        await connection.close()
        return record
    ws_record, websocket = await ws_completion(endpoint, prompt, max_tokens)
    if websocket is not None:
        await websocket.close()
    return ws_record


async def post(endpoint: Endpoint, path: str) -> tuple[int, bytes]:
    """``POST path`` with an empty body on a connection of its own: ``(status, body)``."""
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    try:
        writer.write(
            http_request(
                "POST",
                path,
                endpoint.host,
                endpoint.port,
                [("Content-Length", "0"), ("Connection", "close")],
            )
        )
        response = await reader.read()
    finally:
        writer.close()
    # what follows the status line (the headers too, as callers have always had it)
    return response_status(response), response.partition(b"\r\n")[2]


def live_window(records: Sequence[StreamRecord]) -> tuple[float, float, bool]:
    """The interval when every stream was delivering; ``(start, end, all_live)``.
    Falls back to first-to-last token overall when the streams did not overlap."""
    firsts = [times[0] for r in records if (times := r.delta_times)]
    lasts = [times[-1] for r in records if (times := r.delta_times)]
    if not firsts:
        return 0.0, 0.0, False
    start, end = max(firsts), min(lasts)
    if end - start >= 0.2:
        return start, end, True
    return min(firsts), max(lasts), False
