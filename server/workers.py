"""``--processes N``: N worker processes serving one listening socket.

The parent binds the socket, forks the workers (each runs its own event loop,
application and store connection, and accepts from the shared socket: the
kernel spreads connections over them), restarts a worker that dies, and on
SIGTERM/SIGINT forwards SIGTERM to every worker and waits for them to drain.
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

__all__ = ["run_workers", "worker_count"]

log = logging.getLogger("twinstream.workers")


def worker_count(requested: int) -> int:
    """``0`` means one per CPU core."""
    return requested if requested > 0 else (os.cpu_count() or 1)


def run_workers(
    count: int,
    sockets: list[socket.socket],
    child: Callable[[list[socket.socket]], int],
    max_restarts_per_minute: int = 10,
) -> int:
    """Run ``child(sockets)`` in ``count`` forked processes until a signal
    stops them. Returns 0 if every worker exited cleanly on shutdown."""
    workers: dict[int, int] = {}  # pid -> worker number
    restarts: list[float] = []
    stopping = False

    def spawn(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = child(sockets)
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

    for number in range(count):
        spawn(number)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
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
        for sock in sockets:
            sock.close()
    return status
