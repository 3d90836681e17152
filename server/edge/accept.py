"""Accepting connections without spinning when file descriptors run out.

Tornado's ``netutil.add_accept_handler`` lets an ``OSError`` from ``accept()``
escape its loop. At the open-file limit (EMFILE) the listening socket stays
readable, so the event loop calls the handler again at once: 100% CPU, a
traceback per call, and the waiting clients hang in the backlog.

Here, when ``accept()`` fails that way, the server:

1. refuses the waiting clients cleanly: it closes a spare descriptor kept for
   this moment, accepts each pending connection with it, writes a ``503``
   and closes it (the client learns at once instead of hanging);
2. stops watching the listening socket for ``backoff`` seconds, so the loop
   sleeps and the open connections are served as usual;
3. logs one line per ``log_interval`` with the number refused meanwhile.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

from ..wire.errors import error_json

__all__ = ["add_accept_handler", "REFUSAL"]

log = logging.getLogger("twinstream.edge")

_BODY = error_json(503, "server_busy", "the server is at its connection limit; retry shortly")
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_BATCH = 128  # accepts per readiness event, as Tornado's own handler


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None


def refuse(connection: socket.socket) -> None:
    """Best-effort 503 on a fresh connection, then close it (never blocks)."""
    try:
        connection.setblocking(False)
        connection.send(REFUSAL)
    except OSError:
        pass
    finally:
        connection.close()


def add_accept_handler(
    sock: socket.socket,
    callback: Callable[[socket.socket, Any], None],
    backoff: float = 0.5,
    log_interval: float = 10.0,
    on_refused: Callable[[int], None] | None = None,
) -> Callable[[], None]:
    """Like ``tornado.netutil.add_accept_handler`` (same callback, returns the
    remover), but survives EMFILE/ENFILE as described in the module docstring.
    ``on_refused(n)`` is told how many connections were refused each time."""
    io_loop = IOLoop.current()
    state: dict[str, Any] = {
        "removed": False,
        "paused": False,
        "spare": _open_spare(),
        "refused": 0,
        "last_log": None,
    }

    def shed() -> int:
        """Use the spare descriptor to accept and refuse what waits in the backlog."""
        spare = state["spare"]
        if spare is None:
            return 0
        os.close(spare)
        state["spare"] = None
        count = 0
        try:
            while count < _BATCH:
                try:
                    connection, _ = sock.accept()
                except OSError:  # BlockingIOError: backlog empty; others: give up
                    break
                refuse(connection)
                count += 1
        finally:
            state["spare"] = _open_spare()
        return count

    def report(error: OSError, refused: int) -> None:
        state["refused"] += refused
        now = io_loop.time()
        if state["last_log"] is not None and now - state["last_log"] < log_interval:
            return
        state["last_log"] = now
        name = errno.errorcode.get(error.errno or 0, str(error.errno))
        log.warning(
            "accept() failed (%s): %d connection(s) refused since the last report; "
            "not accepting for %.1f s at a time, open connections are still served",
            name,
            state["refused"],
            backoff,
        )
        state["refused"] = 0

    def pause() -> None:
        if state["paused"] or state["removed"]:
            return
        state["paused"] = True
        io_loop.remove_handler(sock)
        io_loop.call_later(backoff, resume)

    def resume() -> None:
        state["paused"] = False
        if not state["removed"]:
            io_loop.add_handler(sock, accept_handler, IOLoop.READ)

    def accept_handler(fd: Any, events: int) -> None:
        for _ in range(_BATCH):
            if state["removed"] or state["paused"]:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                refused = shed() if exc.errno in _OUT_OF_DESCRIPTORS else 0
                if on_refused is not None and refused:
                    on_refused(refused)
                report(exc, refused)
                pause()
                return
            callback(connection, address)

    def remove_handler() -> None:
        if not state["paused"]:
            io_loop.remove_handler(sock)
        state["removed"] = True
        if state["spare"] is not None:
            os.close(state["spare"])
            state["spare"] = None

    io_loop.add_handler(sock, accept_handler, IOLoop.READ)
    return remove_handler
