"""Async use of the clients: the sync stream, read in a worker thread.

    async for event in clients.aio.astream("Hello", transport="ws"):
        ...

Each stream gets one worker thread that does the blocking reads, so the
event loop never blocks; reconnects, resume and the exceptions are the sync
client's. Leaving the ``async for`` early, or cancelling the task, cancels
the stream (WebSocket: a ``cancel`` message; SSE: ``POST /cancel``).

Why a thread wrapper and not a native asyncio client: the sync transports
are where the protocol's edge cases live (every failure mapped to one
error with one message, resume, cancel races, Ctrl-C hand-over), and a
native client would need a second copy of both transports' I/O (HTTP and
WebSocket on asyncio streams) and of their failure tests, for a gain that
matters only with many streams per process (a thread each, idle while
they wait). The
parts that hold no I/O, :mod:`clients.session` (state, dedupe by ``seq``,
the reconnect decision) and the SSE decoder :mod:`clients.sse`, are what a
native client would share, so it can come later without a rewrite.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .api import stream
from .base import Stream
from .net import DEFAULT_URL

__all__ = ["astream", "acomplete"]

_END: dict[str, Any] = {}


async def astream(
    prompt: str | None = None, transport: str = "sse", url: str = DEFAULT_URL, **options: Any
) -> AsyncIterator[dict[str, Any]]:
    """Yield the events of one completion; takes what :func:`clients.stream` takes."""
    sync_stream = stream(prompt, transport, url, **options)
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
    """The whole completion text; takes what :func:`clients.stream` takes."""
    parts = []
    async for event in astream(prompt, transport, url, **options):
        if event["type"] == "delta":
            parts.append(event["content"])
    return "".join(parts)
