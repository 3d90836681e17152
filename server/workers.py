"""Processes and shutdown.

``--processes N``: N worker processes serving one listening socket.

The parent reserves the port (bound, not listening), forks the workers (each
runs its own event loop, application and store connection, and listens on
the port with ``SO_REUSEPORT``: the kernel spreads new connections evenly over
them, where one shared accept queue lets whichever worker is idle take them
all), restarts a worker that dies, and on SIGTERM/SIGINT forwards SIGTERM to
every worker and waits for them to drain.
Streams are shared through the Redis store, so it does not matter which
worker a client's next connection lands on.

Forking (rather than ``tornado.process.fork_processes``) keeps the parent in
charge of signals: Tornado's parent dies on SIGTERM and leaves its children
running, which is not what a service manager expects.

Shutting down: SIGTERM (or SIGINT) *drains* a process instead of cutting its
streams short.

1. It stops accepting connections (the caller stops the HTTP server).
2. With a shared store (Redis) its readers are sent elsewhere at once: an SSE
   response ends after a ``retry:`` hint with jitter (``EventSource`` and the
   Python client reconnect and resume with ``Last-Event-ID``), a WebSocket is
   closed with 1012 (service restart; clients reconnect and send ``resume``).
   With the memory store nothing could be resumed once the process is gone, so
   its readers read on: an SSE response gets the ``retry:`` hint and goes on to
   its stream's last event, a WebSocket is closed with 1001 (going away) once
   the streams it follows have ended.
3. The generations running here go on for up to ``--drain-timeout`` seconds
   (a second signal ends them at once); those still running then end with
   ``error``/``server_shutdown`` (never a ``done`` that looks finished), which
   every reader still here receives (``/v1``: an error chunk, then ``[DONE]``).
4. Every event-stream response ends with a complete body (its last chunk) and
   every WebSocket with a close frame; then the process exits 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import tornado.web

from .config import Settings

__all__ = [
    "check_processes",
    "drain",
    "reserve_port",
    "run_on_loop",
    "run_workers",
    "serve_processes",
    "worker_count",
]

log = logging.getLogger("twinstream.workers")


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def worker_count(requested: int) -> int:
    """``0`` means one per CPU core."""
    return requested if requested > 0 else (os.cpu_count() or 1)


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (but do not listen on) ``host:port`` with ``SO_REUSEPORT``, so that
    port 0 becomes a fixed port every worker can listen on."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock, int(sock.getsockname()[1])


def run_workers(
    count: int,
    child: Callable[[Callable[[], None]], int],
    ready: Callable[[], None],
    max_restarts_per_minute: int = 10,
) -> int:
    """Run ``child(serving)`` in ``count`` forked processes until a signal
    stops them; ``ready()`` once every first worker called ``serving()``.
    Returns 0 if every worker exited cleanly on shutdown."""
    reader, writer = os.pipe()
    workers: dict[int, int] = {}  # pid -> worker number
    restarts: list[float] = []
    stopping = False

    def spawn(number: int, first: bool = False) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                # Until the worker's loop installs its own handlers (then a
                # SIGTERM drains), a SIGTERM just ends it: it serves nothing yet.
                signal.signal(signal.SIGTERM, _exit_quietly)
                signal.signal(signal.SIGINT, _exit_quietly)
                if first:
                    os.close(reader)

                    def serving() -> None:
                        os.write(writer, b".")

                    code = child(serving)
                else:  # a restart: nobody waits for it
                    code = child(lambda: None)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:  # never return into the parent's loop
                log.exception("worker %d failed", number)
            finally:
                logging.shutdown()
                os._exit(code)
        workers[pid] = number

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    for number in range(count):
        spawn(number, first=True)
    os.close(writer)
    waiting = count
    while waiting > 0:  # until every worker listens (or one died trying)
        got = os.read(reader, waiting)
        if not got:
            break
        waiting -= len(got)
    os.close(reader)
    if waiting == 0:
        ready()
    status = 0
    try:
        while workers:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            if pid not in workers:
                continue
            number = workers.pop(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            if stopping:
                if code != 0:
                    status = 1
                continue
            now = time.monotonic()
            restarts[:] = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > max_restarts_per_minute:
                log.error("workers keep dying (last: exit %s); stopping", code)
                stop(signal.SIGTERM, None)
                status = 1
                continue
            log.warning("worker %d (pid %d) exited with %s; starting another", number, pid, code)
            spawn(number)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def check_processes(settings: Settings) -> str:
    """Why ``--processes`` cannot be honoured with these settings ('' if it can)."""
    if settings.processes != 1 and settings.store == "memory":
        return (
            f"--processes {settings.processes} needs a shared store (--store "
            "redis://HOST:PORT/DB): with --store memory each process keeps its own streams, "
            "so a resume or cancel that lands on another process would find nothing"
        )
    return ""


def run_on_loop(main: Coroutine[Any, Any, None], loop: str) -> None:
    """``asyncio.run(main)`` on the event loop ``--loop`` names (asyncio's own, or
    uvloop's ``uvloop.run``: libuv under the same asyncio API)."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


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
        run_on_loop(
            serve(worker_settings, ready=lambda _port: serving(), reuse_port=True), settings.loop
        )
        return 0

    try:
        return run_workers(worker_count(settings.processes), child, lambda: ready(port))
    finally:
        reservation.close()


async def drain(app: tornado.web.Application, settings: Settings) -> None:
    """Drain this process (see the module docstring); the HTTP server has stopped
    accepting already. With a shared store the readers are sent elsewhere at once;
    with the memory store they read on, to their streams' ends (nothing could be
    resumed after the process is gone). Either way every event-stream response
    ends with a complete body and every WebSocket with a close frame, before the
    caller closes what is left (idle keep-alive connections)."""
    store = app.settings["store"]
    connections = app.settings["watch"]
    elsewhere = settings.store != "memory"
    for handler in list(connections.drainable):
        # Jitter: the clients of a draining process should not all come back at once.
        handler.drain(int(settings.retry_ms * random.uniform(0.5, 1.5)), elsewhere)
    await store.drain(settings.drain_timeout)
    # the terminal events, the responses' last chunks and the close handshakes
    await connections.wait_idle(timeout=2 if elsewhere else 5)
