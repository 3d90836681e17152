"""``--processes N``: N worker processes serving one listening socket.

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
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable

__all__ = ["run_workers", "reserve_port", "worker_count"]

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
