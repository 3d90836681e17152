"""Shutting down without losing a stream, and running several processes.

With a shared store (Redis), SIGTERM *drains* a process instead of cancelling
its streams:

1. it stops accepting connections (the caller stops the HTTP server);
2. its readers are sent elsewhere at once: an SSE response ends after a
   ``retry:`` hint with jitter (``EventSource`` and the Python client reconnect
   and resume with ``Last-Event-ID``), a WebSocket is closed with 1012
   (service restart; clients reconnect and send ``resume``);
3. the generations running here go on, written to the store, for up to
   ``--drain-timeout`` seconds; those still running then end with
   ``error``/``server_shutdown`` (never a ``done`` that looks finished);
4. the process exits 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Coroutine
from typing import Any

import tornado.web

from .config import Settings
from .workers import reserve_port, run_workers, worker_count

__all__ = ["check_processes", "drain", "serve_processes"]


def check_processes(settings: Settings) -> str:
    """Why ``--processes`` cannot be honoured with these settings ('' if it can)."""
    if settings.processes != 1 and settings.store == "memory":
        return (
            f"--processes {settings.processes} needs a shared store (--store "
            "redis://HOST:PORT/DB): with --store memory each process keeps its own streams, "
            "so a resume or cancel that lands on another process would find nothing"
        )
    return ""


def serve_processes(
    settings: Settings,
    ready: Callable[[int], None],
    serve: Callable[..., Coroutine[Any, Any, None]],
) -> int:
    """Run ``--processes`` workers of ``serve(settings, ...)`` on one port;
    ``ready(port)`` once they all listen."""
    reservation, port = reserve_port(settings.host, settings.port)
    worker_settings = dataclasses.replace(settings, port=port)

    def child(serving: Callable[[], None]) -> int:
        reservation.close()
        asyncio.run(serve(worker_settings, ready=lambda _port: serving(), reuse_port=True))
        return 0

    try:
        return run_workers(worker_count(settings.processes), child, lambda: ready(port))
    finally:
        reservation.close()


async def drain(app: tornado.web.Application, settings: Settings) -> None:
    """Drain this process (see the module docstring); the HTTP server has stopped
    accepting already."""
    store = app.settings["store"]
    connections = app.settings["watch"]
    for handler in list(connections.drainable):
        # Jitter: the clients of a draining process should not all come back at once.
        handler.drain(int(settings.retry_ms * random.uniform(0.5, 1.5)))
    await store.drain(settings.drain_timeout)
    await connections.wait_idle(timeout=2)
