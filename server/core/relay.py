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
- The :class:`~server.core.watch.ConnectionWatch` runs one timer for every
  connection: write deadlines, SSE heartbeats and WebSocket keepalive pings.

Nothing here knows Tornado: a sink writes to a :class:`Transport` (the adapter
wraps Tornado's IOStream) and reports to the :class:`Connection` that owns it
(the request handler).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Protocol

from .log import CATCH_UP_BYTES, StreamLog
from .watch import ConnectionWatch

__all__ = [
    "Sink",
    "SinkState",
    "Relay",
    "RelayState",
    "Outcome",
    "Cut",
    "Transport",
    "TransportClosed",
    "Connection",
    "Frame",
    "ROOM_BYTES",
]

log = logging.getLogger("twinstream.relay")

#: Relays stop writing to a connection that has this much queued, and catch
#: up once the kernel has taken it: the bound on what one reader costs.
ROOM_BYTES = 64 * 1024

#: Turns ``texts`` (events ``first_seq``, ``first_seq + 1``, ...) into wire bytes.
Frame = Callable[[int, list[bytes]], bytes]


class Cut(str, enum.Enum):
    """Why a sink cuts its connection (what :meth:`Connection.cut` is told)."""

    #: more than ``max_pending`` bytes unsent; the reader still takes bytes, so a
    #: close message queued behind the backlog can still reach it
    OVER_CAP = "over_cap"
    #: no write progress for ``write_timeout``: nothing more can reach the reader
    STUCK = "stuck"
    #: a keepalive ping went unanswered for a whole interval: the peer is gone
    NO_PONG = "no_pong"
    #: relaying raised (a bug, never the client's doing): logged once, and the
    #: reader is told the protocol's way (WebSocket 1011) instead of left waiting
    FAILED = "failed"


class Outcome(str, enum.Enum):
    """How a relay ended (what :meth:`Connection.relay_stopped` is told)."""

    #: the terminal event was written
    COMPLETE = "complete"
    #: the connection went away, or the relay was stopped first
    CLOSED = "closed"
    #: the server is draining: the reader is sent elsewhere to resume
    DRAIN = "drain"


class TransportClosed(Exception):
    """The connection is closed or broke while writing."""


class Transport(Protocol):
    """A connection's byte pipe, as a sink sees it."""

    def send(self, data: bytes) -> int:
        """Queue ``data`` after what is queued; return the bytes still unsent
        (0: the kernel took everything). Raises :class:`TransportClosed`."""
        ...

    def pending(self) -> int:
        """Bytes written that the kernel has not taken yet."""
        ...

    def taken(self) -> int:
        """Bytes the kernel has taken so far (stands still for a stuck reader)."""
        ...

    def when_sent(self) -> asyncio.Future[None]:
        """A future that resolves once everything queued is sent (fails if the
        connection closes first). Raises :class:`TransportClosed`."""
        ...

    def closed(self) -> bool: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """What a sink and its relays report to the handler that owns the connection."""

    def write_head(self, payload: bytes) -> None:
        """The first write, when the sink was made with ``head_pending``: an HTTP
        response's head leaves with its first events, in one write."""
        ...

    def cut(self, reason: Cut) -> None:
        """Disconnect the reader the transport's way (the sink is closed already)."""
        ...

    def relay_stopped(self, relay: Relay, outcome: Outcome) -> None:
        """A relay on this connection ended; called once per relay."""
        ...


class SinkState(enum.Enum):
    """A sink's life: ``HEAD_PENDING`` -(first write)-> ``OPEN``
    -(backlog over the room)-> ``WAITING_FOR_ROOM`` -(kernel took it)-> ``OPEN``;
    any state -(close)-> ``CLOSED``, for good."""

    HEAD_PENDING = "head_pending"
    OPEN = "open"
    WAITING_FOR_ROOM = "waiting_for_room"
    CLOSED = "closed"


class RelayState(enum.Enum):
    """A relay's life: ``READY`` -(start)-> ``FOLLOWING`` -(sink full)->
    ``PAUSED`` -(room again)-> ``FOLLOWING``; -(terminal event written, the
    connection gone, or stop)-> ``STOPPED``, for good."""

    READY = "ready"
    FOLLOWING = "following"
    PAUSED = "paused"
    STOPPED = "stopped"


# Module constants: an identity test against a global is the hot path's cheapest check.
_HEAD_PENDING = SinkState.HEAD_PENDING
_OPEN = SinkState.OPEN
_WAITING_FOR_ROOM = SinkState.WAITING_FOR_ROOM
_CLOSED = SinkState.CLOSED
_FOLLOWING = RelayState.FOLLOWING
_PAUSED = RelayState.PAUSED
_STOPPED = RelayState.STOPPED


class Sink:
    """One connection's writer (see the module docstring).

    ``transform`` turns payload bytes into wire bytes (chunked coding, gzip);
    ``heartbeat`` is the payload written when the connection idles (SSE
    comments), or None; ``ping`` the bytes of a keepalive ping (a WebSocket
    ping frame), written every ``ping_interval`` of the watch, whose answer is
    reported with :meth:`pong`. When the connection closes, every relay on it
    stops; their streams go on.

    With ``head_pending`` the first payload goes to the owner's
    :meth:`Connection.write_head` in place of ``transform`` and the transport.
    """

    __slots__ = (
        "transport",
        "owner",
        "watch",
        "state",
        "max_pending",
        "transform",
        "heartbeat",
        "ping",
        "awaiting_pong",
        "room",
        "batch_bytes",
        "relays",
        "waiting",
        "queued",
        "wrote",
        "idle_since",
        "progress_mark",
        "progress_at",
        "__weakref__",
    )

    def __init__(
        self,
        transport: Transport,
        owner: Connection,
        watch: ConnectionWatch,
        max_pending: int,
        transform: Callable[[bytes], bytes] | None = None,
        heartbeat: bytes | None = None,
        ping: bytes | None = None,
        head_pending: bool = False,
    ) -> None:
        self.transport = transport
        self.owner = owner
        self.watch = watch
        self.state = _HEAD_PENDING if head_pending else _OPEN
        self.max_pending = max_pending
        self.transform = transform
        self.heartbeat = heartbeat
        self.ping = ping
        #: a keepalive ping is out and its pong has not come back
        self.awaiting_pong = False
        # Relays write while less than ``room`` is queued, at most
        # ``batch_bytes`` at once: what is queued stays under half the cap.
        self.room = max(1024, min(ROOM_BYTES, max_pending // 4))
        self.batch_bytes = max(1024, min(CATCH_UP_BYTES, max_pending // 4))
        self.relays: list[Relay] = []  # few per connection: a list is smallest
        self.waiting: list[Relay] = []
        self.queued = 0  # bytes queued after the last write (0: all sent)
        self.wrote = False
        self.idle_since = 0.0
        self.progress_mark = 0
        self.progress_at = 0.0
        watch.register(self)

    @property
    def closed(self) -> bool:
        return self.state is _CLOSED

    def write(self, payload: bytes, transform: bool = True) -> bool:
        """Send ``payload`` now, in order (through ``transform`` unless told
        not to). False if the connection is gone or was just cut as a slow
        consumer (the caller stops)."""
        state = self.state
        if state is _CLOSED:
            return False
        transport = self.transport
        if state is _HEAD_PENDING:
            self.state = _OPEN
            self.owner.write_head(payload)
            if transport.closed():
                self.close()
                return False
            pending = self.queued = transport.pending()
        else:
            data = self.transform(payload) if transform and self.transform is not None else payload
            try:
                pending = self.queued = transport.send(data)
            except TransportClosed:
                self.close()
                return False
        self.wrote = True
        if pending:
            if pending > self.max_pending:
                self.slow_consumer(f"more than {self.max_pending} bytes unread", Cut.OVER_CAP)
                return False
            self.watch_progress()
        return True

    def watch_progress(self) -> None:
        """Start the write deadline while bytes are queued, unless it runs."""
        if self.state is _CLOSED or not self.transport.pending():
            return
        if self not in self.watch.blocked:
            self.progress_mark = self.transport.taken()
            self.progress_at = asyncio.get_running_loop().time()
            self.watch.mark_blocked(self)

    def has_room(self) -> bool:
        # Only writes add to the queue, so when the last one left it short,
        # it is short now; otherwise look at what the kernel has taken since.
        # (Tornado's own writes, a pong or a close frame, are a few bytes.)
        if self.queued < self.room:
            return True
        self.queued = self.transport.pending()
        return self.queued < self.room

    def wait_for_room(self, relay: Relay) -> None:
        """Call ``relay.resume()`` once the kernel has taken the backlog. The
        write deadline runs meanwhile: the backlog may be another response's
        (HTTP/1.1 pipelining) that this sink never wrote."""
        self.waiting.append(relay)
        self.watch_progress()
        if self.state is not _OPEN:
            return  # already waiting (or closed)
        try:
            sent = self.transport.when_sent()
        except TransportClosed:
            self.close()
            return
        self.state = _WAITING_FOR_ROOM
        sent.add_done_callback(self._room_again)

    def _room_again(self, future: asyncio.Future[None]) -> None:
        if self.state is _CLOSED:
            return
        if future.cancelled() or future.exception() is not None:
            self.close()
            return
        self.state = _OPEN
        waiting, self.waiting = self.waiting, []
        for relay in waiting:
            relay.resume()

    def check_progress(self, now: float, write_timeout: float) -> None:
        """Called by the watch while bytes are queued: cut the connection when
        the kernel has taken nothing for ``write_timeout`` seconds. (A client
        that answers pings but never reads makes no progress here.)"""
        transport = self.transport
        if self.state is _CLOSED or transport.closed() or not transport.pending():
            self.watch.blocked.discard(self)
            return
        taken = transport.taken()
        if taken != self.progress_mark:
            self.progress_mark = taken
            self.progress_at = now
        elif write_timeout > 0 and now - self.progress_at >= write_timeout:
            self.slow_consumer(f"no write progress for {write_timeout:g}s", Cut.STUCK)

    def stop_heartbeats(self) -> None:
        self.heartbeat = None
        self.watch.beating.discard(self)

    def beat(self) -> None:
        if self.state is _HEAD_PENDING:
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
        if self.state is _CLOSED or self.ping is None:
            return False
        if self.transport.pending():
            self.awaiting_pong = False
            return True
        if self.awaiting_pong:
            log.info("disconnecting a peer that did not answer a keepalive ping")
            self.close()
            self.owner.cut(Cut.NO_PONG)
            return False
        self.awaiting_pong = True
        return self.write(self.ping, transform=False)

    def pong(self) -> None:
        """The peer answered a ping (any pong counts, as RFC 6455 5.5.3 allows)."""
        self.awaiting_pong = False

    def slow_consumer(self, why: str, reason: Cut) -> None:
        """Stop the relays and cut the connection the transport's way
        (``reason``: ``OVER_CAP`` or ``STUCK``)."""
        log.info("disconnecting a slow consumer: %s", why)
        self.watch.slow_consumers += 1
        self.close()
        self.owner.cut(reason)

    def close(self) -> None:
        """Stop every relay on this connection (idempotent). The streams go on."""
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        self.watch.unregister(self)
        self.waiting.clear()
        for relay in list(self.relays):
            relay.stop(Outcome.CLOSED)


class Relay:
    """Follows one stream onto one sink, from ``after`` to the terminal event.

    The sink's owner is told once, through :meth:`Connection.relay_stopped`:
    ``COMPLETE`` after the terminal event was written, ``CLOSED`` if the
    connection went away or :meth:`stop` was called first. Stopping never
    touches generation.
    """

    __slots__ = ("stream", "sink", "next_seq", "frame", "state")

    def __init__(self, stream: StreamLog, after: int, sink: Sink, frame: Frame) -> None:
        self.stream = stream
        self.sink = sink
        self.next_seq = after + 1
        self.frame = frame
        self.state = RelayState.READY

    def start(self) -> None:
        if self.sink.state is _CLOSED:
            self.state = _STOPPED
            self.sink.owner.relay_stopped(self, Outcome.CLOSED)
            return
        self.state = _FOLLOWING
        self.sink.watch.relays += 1
        self.sink.relays.append(self)
        self.stream.subscribe(self)
        self.pump()

    def on_append(self, stream: StreamLog) -> None:
        if self.state is _FOLLOWING:
            self.pump()

    def resume(self) -> None:
        if self.state is _PAUSED:
            self.state = _FOLLOWING
            self.pump()

    def pump(self) -> None:
        """Write everything that is ready, while the connection has room."""
        stream, sink = self.stream, self.sink
        # The try costs nothing until something raises (Python 3.11's zero-cost
        # exceptions); what raises here is a bug, and it must neither leave a
        # reader waiting on a relay that is gone nor reach the stream's producer.
        try:
            while self.state is _FOLLOWING:
                last_seq = stream.last_seq
                if self.next_seq > last_seq:
                    if stream.ended:
                        self.stop(Outcome.COMPLETE)
                    return
                if not sink.has_room():
                    self.state = _PAUSED
                    sink.wait_for_room(self)
                    return
                texts = stream.read(self.next_seq - 1, sink.batch_bytes)
                data = self.frame(self.next_seq, texts)
                self.next_seq += len(texts)
                if not sink.write(data):
                    self.stop(Outcome.CLOSED)
                    return
                if self.next_seq > last_seq and not stream.ended:
                    # Caught up (a write never appends): the common case, one event
                    # written as it was appended, needs no second look at the log.
                    return
        except Exception:
            self._failed()

    def _failed(self) -> None:
        log.exception("relaying stream %s failed; its connection is closed", self.stream.id)
        sink = self.sink
        self.stop(Outcome.CLOSED)
        if sink.state is not _CLOSED:
            sink.close()
            sink.owner.cut(Cut.FAILED)

    def stop(self, outcome: Outcome = Outcome.CLOSED) -> None:
        if self.state is _STOPPED or self.state is RelayState.READY:
            return
        self.state = _STOPPED
        sink = self.sink
        sink.watch.relays -= 1
        sink.relays.remove(self)
        self.stream.unsubscribe(self)
        sink.owner.relay_stopped(self, outcome)
