"""Moving a stream's events onto connections, with explicit backpressure.

- A :class:`Sink` is one connection's writer. Every byte the relays send goes
  through it, so it knows how much the kernel has not taken yet. It bounds
  that (``max_pending_bytes``) and how long it may stand still
  (``write_timeout``); past either the reader is a *slow consumer* and is
  disconnected (SSE: the connection closes; WebSocket: close code 4008). The
  stream goes on, so the reader can resume from the log with nothing lost.
- A :class:`Relay` follows one stream onto one sink. When an event is
  appended it is written at once (no task wakes up). When the sink is full,
  the relay stops writing and, once the kernel has taken the backlog, catches
  up from the log in large writes.
- One :class:`ConnectionWatch` per application runs one timer for every
  connection: write deadlines, SSE heartbeats and WebSocket keepalive pings.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from tornado.iostream import IOStream, StreamClosedError

from .. import tornado_adapter
from .log import CATCH_UP_BYTES, StreamLog

__all__ = [
    "Sink",
    "Relay",
    "ConnectionWatch",
    "Frame",
    "ROOM_BYTES",
    "OVER_CAP",
    "STUCK",
    "NO_PONG",
]

log = logging.getLogger("twinstream.relay")

#: Relays stop writing to a connection that has this much queued, and catch
#: up once the kernel has taken it: the bound on what one reader costs.
ROOM_BYTES = 64 * 1024

# Why a sink cuts its connection (the argument of its ``cut``):
#: more than ``max_pending`` bytes unsent; the reader still takes bytes, so a
#: close message queued behind the backlog can still reach it
OVER_CAP = "over_cap"
#: no write progress for ``write_timeout``: nothing more can reach the reader
STUCK = "stuck"
#: a keepalive ping went unanswered for a whole interval: the peer is gone
NO_PONG = "no_pong"

#: Turns ``texts`` (events ``first_seq``, ``first_seq + 1``, ...) into wire bytes.
Frame = Callable[[int, list[bytes]], bytes]


class ConnectionWatch:
    """Write deadlines, heartbeats and keepalive pings for every connection,
    on one timer (a task or timer per connection would cost more memory than
    the connection's own objects)."""

    def __init__(
        self, write_timeout: float = 10.0, heartbeat: float = 0.0, ping_interval: float = 0.0
    ) -> None:
        self.write_timeout = write_timeout
        self.heartbeat = heartbeat
        self.ping_interval = ping_interval
        # A tick of an eighth of the shortest period: a deadline, a heartbeat
        # or a ping is late by at most that much.
        periods = [p / 8 for p in (write_timeout, heartbeat, ping_interval) if p > 0]
        self.tick = max(0.001, min([1.0, *periods]))
        self.blocked: set[Sink] = set()
        self.beating: set[Sink] = set()
        #: sinks that ping, each with when its next ping is due; all share one
        #: interval, so insertion order is due order and a tick stops at the
        #: first not due
        self.pinging: dict[Sink, float] = {}
        self.relays = 0  # relays open now (shutdown waits for 0)
        #: open /sse and /ws handlers, told to send their clients elsewhere on drain
        self.drainable: weakref.WeakSet[Any] = weakref.WeakSet()
        self.slow_consumers = 0  # connections cut as slow consumers so far
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_running(self) -> None:
        if self._timer is None:
            self._loop = asyncio.get_running_loop()
            self._timer = self._loop.call_later(self.tick, self._run)

    def _run(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for sink in list(self.blocked):
            sink.check_progress(now, self.write_timeout)
        if self.heartbeat > 0:
            for sink in list(self.beating):
                if sink.wrote:
                    sink.wrote = False
                    sink.idle_since = now
                elif now - sink.idle_since >= self.heartbeat:
                    sink.beat()
                    sink.wrote = False
                    sink.idle_since = now
        if self.pinging:
            self._ping_due(now)
        if self.blocked or self.beating or self.pinging:
            self._timer = self._loop.call_later(self.tick, self._run)
        else:
            self._timer = None

    def _ping_due(self, now: float) -> None:
        due = []
        for sink, at in self.pinging.items():
            if at > now:
                break
            due.append(sink)
        for sink in due:
            del self.pinging[sink]
            if sink.keepalive():
                self.pinging[sink] = now + self.ping_interval

    def register(self, sink: Sink) -> None:
        if sink.heartbeat is not None and self.heartbeat > 0:
            self.beating.add(sink)
            sink.idle_since = asyncio.get_running_loop().time()
            self._ensure_running()
        if sink.ping is not None and self.ping_interval > 0:
            self.pinging[sink] = asyncio.get_running_loop().time() + self.ping_interval
            self._ensure_running()

    def unregister(self, sink: Sink) -> None:
        self.blocked.discard(sink)
        self.beating.discard(sink)
        self.pinging.pop(sink, None)

    def mark_blocked(self, sink: Sink) -> None:
        self.blocked.add(sink)
        self._ensure_running()

    async def wait_idle(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no relay is open."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.relays and loop.time() < deadline:
            await asyncio.sleep(0.01)


class Sink:
    """One connection's writer (see the module docstring).

    ``transform`` turns payload bytes into wire bytes (chunked coding, gzip);
    ``heartbeat`` is the payload written when the connection idles (SSE
    comments), or None; ``ping`` the bytes of a keepalive ping (a WebSocket
    ping frame), written every ``ping_interval`` of the watch, whose answer is
    reported with :meth:`pong`. ``cut(reason)`` disconnects the reader the
    transport's way (``OVER_CAP``, ``STUCK`` or ``NO_PONG``). When the
    connection closes, every relay on it stops; their streams go on.

    ``first``, when given, writes the first payload in place of ``transform``
    and the socket (an HTTP response's head goes out with its first events,
    in one write); it is then dropped.
    """

    __slots__ = (
        "stream",
        "watch",
        "max_pending",
        "transform",
        "heartbeat",
        "ping",
        "awaiting_pong",
        "cut",
        "room",
        "batch_bytes",
        "relays",
        "waiting",
        "closed",
        "queued",
        "wrote",
        "idle_since",
        "progress_mark",
        "progress_at",
        "_draining",
        "first",
        "__weakref__",
    )

    def __init__(
        self,
        stream: IOStream,
        watch: ConnectionWatch,
        cut: Callable[[str], None],
        max_pending: int = 1 << 20,
        transform: Callable[[bytes], bytes] | None = None,
        heartbeat: bytes | None = None,
        ping: bytes | None = None,
        first: Callable[[bytes], None] | None = None,
    ) -> None:
        self.stream = stream
        self.first = first
        self.watch = watch
        self.max_pending = max_pending
        self.transform = transform
        self.heartbeat = heartbeat
        self.ping = ping
        self.awaiting_pong = False
        self.cut = cut
        # Relays write while less than ``room`` is queued, at most
        # ``batch_bytes`` at once: what is queued stays under half the cap.
        self.room = max(1024, min(ROOM_BYTES, max_pending // 4))
        self.batch_bytes = max(1024, min(CATCH_UP_BYTES, max_pending // 4))
        self.relays: list[Relay] = []  # few per connection: a list is smallest
        self.waiting: list[Relay] = []
        self.closed = False
        self.queued = 0  # bytes queued after the last write (0: all sent)
        self.wrote = False
        self.idle_since = 0.0
        self.progress_mark = 0
        self.progress_at = 0.0
        self._draining = False
        watch.register(self)

    def write(self, payload: bytes, transform: bool = True) -> bool:
        """Send ``payload`` now, in order (through ``transform`` unless told
        not to). False if the connection is gone or was just cut as a slow
        consumer (the caller stops)."""
        if self.closed:
            return False
        stream = self.stream
        if self.first is not None:
            first, self.first = self.first, None
            first(payload)
            if stream.closed():
                self.close()
                return False
            pending = self.queued = tornado_adapter.pending_bytes(stream)
        else:
            data = self.transform(payload) if transform and self.transform is not None else payload
            try:
                pending = self.queued = tornado_adapter.send(stream, data)
            except StreamClosedError:
                self.close()
                return False
        self.wrote = True
        if pending:
            if pending > self.max_pending:
                self.slow_consumer(f"more than {self.max_pending} bytes unread", OVER_CAP)
                return False
            self.watch_progress()
        return True

    def watch_progress(self) -> None:
        """Start the write deadline while bytes are queued, unless it runs."""
        if self.closed or not tornado_adapter.pending_bytes(self.stream):
            return
        if self not in self.watch.blocked:
            self.progress_mark = tornado_adapter.bytes_taken(self.stream)
            self.progress_at = asyncio.get_running_loop().time()
            self.watch.mark_blocked(self)

    def has_room(self) -> bool:
        # Only writes add to the queue, so when the last one left it short,
        # it is short now; otherwise look at what the kernel has taken since.
        # (Tornado's own writes, a pong or a close frame, are a few bytes.)
        if self.queued < self.room:
            return True
        self.queued = tornado_adapter.pending_bytes(self.stream)
        return self.queued < self.room

    def wait_for_room(self, relay: Relay) -> None:
        """Call ``relay.resume()`` once the kernel has taken the backlog. The
        write deadline runs meanwhile: the backlog may be another response's
        (HTTP/1.1 pipelining) that this sink never wrote."""
        self.waiting.append(relay)
        self.watch_progress()
        if self._draining:
            return
        self._draining = True
        try:
            drained = self.stream.write(b"")  # resolves when everything queued is sent
        except StreamClosedError:
            self.close()
            return
        drained.add_done_callback(self._drained)

    def _drained(self, future: asyncio.Future[None]) -> None:
        self._draining = False
        if future.cancelled() or future.exception() is not None:
            self.close()
            return
        waiting, self.waiting = self.waiting, []
        for relay in waiting:
            relay.resume()

    def check_progress(self, now: float, write_timeout: float) -> None:
        """Called by the watch while bytes are queued: cut the connection when
        the kernel has taken nothing for ``write_timeout`` seconds. (A client
        that answers pings but never reads makes no progress here.)"""
        stream = self.stream
        if self.closed or stream.closed() or not tornado_adapter.pending_bytes(stream):
            self.watch.blocked.discard(self)
            return
        taken = tornado_adapter.bytes_taken(stream)
        if taken != self.progress_mark:
            self.progress_mark = taken
            self.progress_at = now
        elif write_timeout > 0 and now - self.progress_at >= write_timeout:
            self.slow_consumer(f"no write progress for {write_timeout:g}s", STUCK)

    def stop_heartbeats(self) -> None:
        self.heartbeat = None
        self.watch.beating.discard(self)

    def beat(self) -> None:
        if self.first is not None:
            return  # no head sent yet: the stream may still be refused with an error
        if self.heartbeat is not None and not self.has_room():
            return  # a backlog is traffic enough
        if self.heartbeat is not None:
            self.write(self.heartbeat)

    def keepalive(self) -> bool:
        """A ping is due: send it, or cut the connection if the previous one
        is still unanswered (False: stop pinging this sink). While a backlog
        waits the ping would queue behind it, so none is sent: the write
        deadline already watches that connection."""
        if self.closed or self.ping is None:
            return False
        if tornado_adapter.pending_bytes(self.stream):
            self.awaiting_pong = False
            return True
        if self.awaiting_pong:
            log.info("disconnecting a peer that did not answer a keepalive ping")
            self.close()
            self.cut(NO_PONG)
            return False
        self.awaiting_pong = True
        return self.write(self.ping, transform=False)

    def pong(self) -> None:
        """The peer answered a ping (any pong counts, as RFC 6455 5.5.3 allows)."""
        self.awaiting_pong = False

    def slow_consumer(self, why: str, reason: str) -> None:
        """Stop the relays and cut the connection the transport's way
        (``reason``: ``OVER_CAP`` or ``STUCK``)."""
        log.info("disconnecting a slow consumer: %s", why)
        self.watch.slow_consumers += 1
        self.close()
        self.cut(reason)

    def close(self) -> None:
        """Stop every relay on this connection (idempotent). The streams go on."""
        if self.closed:
            return
        self.closed = True
        self.watch.unregister(self)
        self.waiting.clear()
        for relay in list(self.relays):
            relay.stop("closed")


class Relay:
    """Follows one stream onto one sink, from ``after`` to the terminal event.

    ``on_end(relay, outcome)`` is called once: ``"complete"`` after the
    terminal event was written, ``"closed"`` if the connection went away or
    :meth:`stop` was called first. Stopping never touches generation.
    """

    __slots__ = ("stream", "sink", "next_seq", "frame", "on_end", "active", "paused")

    def __init__(
        self,
        stream: StreamLog,
        after: int,
        sink: Sink,
        frame: Frame,
        on_end: Callable[[Relay, str], None],
    ) -> None:
        self.stream = stream
        self.sink = sink
        self.next_seq = after + 1
        self.frame = frame
        self.on_end = on_end
        self.active = False
        self.paused = False

    def start(self) -> None:
        if self.sink.closed:
            self.on_end(self, "closed")
            return
        self.active = True
        self.sink.watch.relays += 1
        self.sink.relays.append(self)
        self.stream.subscribe(self)
        self.pump()

    def on_append(self, stream: StreamLog) -> None:
        if not self.paused:
            self.pump()

    def resume(self) -> None:
        self.paused = False
        self.pump()

    def pump(self) -> None:
        """Write everything that is ready, while the connection has room."""
        stream, sink = self.stream, self.sink
        while self.active:
            last_seq = stream.last_seq
            if self.next_seq > last_seq:
                if stream.ended:
                    self.stop("complete")
                return
            if not sink.has_room():
                self.paused = True
                sink.wait_for_room(self)
                return
            texts = stream.read(self.next_seq - 1, sink.batch_bytes)
            data = self.frame(self.next_seq, texts)
            self.next_seq += len(texts)
            if not sink.write(data):
                self.stop("closed")
                return
            if self.next_seq > last_seq and not stream.ended:
                # Caught up (a write never appends): the common case, one event
                # written as it was appended, needs no second look at the log.
                return

    def stop(self, outcome: str = "closed") -> None:
        if not self.active:
            return
        self.active = False
        self.sink.watch.relays -= 1
        self.sink.relays.remove(self)
        self.stream.unsubscribe(self)
        self.on_end(self, outcome)
