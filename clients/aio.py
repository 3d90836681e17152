"""Async use of the clients: the sync stream, read in a worker thread.

    async for event in clients.aio.astream("Hello", transport="ws"):
        ...

Each stream gets one worker thread that does the blocking reads, so the
event loop never blocks; reconnects, resume and the exceptions are the sync
client's. Leaving the ``async for`` early, or cancelling the task, cancels
the stream (WebSocket: a ``cancel`` message; SSE: ``POST /cancel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import DEFAULT_URL, ReconnectPolicy, Stream, stream

__all__ = ["astream", "acomplete"]

_END: dict[str, Any] = {}


async def astream(
    prompt: str | None = None,
    transport: str = "sse",
    url: str = DEFAULT_URL,
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    max_tokens: int | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    reconnect: ReconnectPolicy | None = None,
    api_key: str | None = None,
    **params: Any,
) -> AsyncIterator[dict[str, Any]]:
    """Yield the events of one completion, as :func:`clients.stream` does."""
    sync_stream = stream(
        prompt,
        transport,
        url,
        messages=messages,
        max_tokens=max_tokens,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        reconnect=reconnect,
        api_key=api_key,
        **params,
    )
    iterator = iter(sync_stream)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twinstream-reader")
    step: Future[dict[str, Any]] | None = None
    try:
        while True:
            step = worker.submit(next, iterator, _END)
            event = await asyncio.wrap_future(step)
            if event is _END:
                return
            yield event
    finally:
        _finish(sync_stream, step)
        worker.shutdown(wait=False)


def _finish(sync_stream: Stream, step: Future[dict[str, Any]] | None) -> None:
    """Cancel (unless ended) and close the stream, off the event loop: the
    cancel may be a request, and closing must wait for a read in progress."""

    def cancel_then_close() -> None:
        if not sync_stream.ended:
            sync_stream.cancel()
        if step is not None:
            with contextlib.suppress(Exception):
                step.result()  # the worker's read returns soon after the cancel
        sync_stream.close()

    # not a daemon: at interpreter exit, the cancel still goes out
    threading.Thread(target=cancel_then_close, name="twinstream-cancel").start()


async def acomplete(
    prompt: str | None = None, transport: str = "sse", url: str = DEFAULT_URL, **options: Any
) -> str:
    """The whole completion text."""
    parts = []
    async for event in astream(prompt, transport, url, **options):
        if event["type"] == "delta":
            parts.append(event["content"])
    return "".join(parts)
