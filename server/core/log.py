"""A stream's log: one completion's numbered events (``seq`` = index), each kept once,
as the protocol JSON that is sent. Connections are only *followers*: any number may
follow a stream from any ``seq``, come and go, and resume later with nothing lost and
nothing repeated. Appending pushes: each caught-up follower is called synchronously
and writes the event to its connection at once, so no task wakes per event per
follower."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from array import array
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from ..wire import events

log = logging.getLogger("twinstream.streams")

#: How much a follower that is behind reads (and writes) at once.
CATCH_UP_BYTES = 256 * 1024


def new_stream_id() -> str:
    """An unguessable id (128 random bits): knowing it is the right to read the stream."""
    return secrets.token_urlsafe(16)


class Follower(Protocol):
    """Something that relays a log's events to a connection."""

    def on_append(self, stream: StreamLog) -> None:
        """Called synchronously after every append (the terminal one too).
        Must not block or raise; reads what it needs with ``stream.read``."""


class _Waiter:
    __slots__ = ()

    def on_append(self, stream: StreamLog) -> None:
        return None


class _QueueWaker:
    __slots__ = ("queue",)

    def __init__(self, queue: asyncio.Queue[None]) -> None:
        self.queue = queue

    def on_append(self, stream: StreamLog) -> None:
        if self.queue.empty():
            self.queue.put_nowait(None)


class StreamLog:
    """One stream's events, each kept once as its protocol JSON.

    Read side: :meth:`read` returns the batch of events after a ``seq`` that
    is ready now; :meth:`subscribe` registers a follower that is called after
    every append. Followers never touch generation; a follower that goes away
    just unsubscribes.
    """

    __slots__ = (
        "id",
        "model",
        "created",
        "_buf",
        "_ends",
        "_delta_head",
        "ended_at",
        "followers",
        "last_read_at",
        "_clock",
        "_ended_waiters",
    )

    def __init__(
        self, stream_id: str, model: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.id = stream_id
        self.model = model
        self.created = int(time.time())
        # Every event's UTF-8 JSON, back to back, and where each one ends: a
        # few bytes of overhead per event instead of an object per event. Text
        # deltas are kept as records (events.delta_record: the JSON without
        # the head all deltas share); read() restores the sent bytes. Frozen
        # to bytes (trimmed) when the stream ends.
        self._buf: bytearray | bytes = bytearray()
        self._ends = array("I")
        self._delta_head = events.delta_head(stream_id)
        self.ended_at: float | None = None
        self.followers: list[Follower] = []
        self._clock = clock
        self.last_read_at = clock()
        self._ended_waiters: list[asyncio.Future[None]] | None = None

    # -- state -------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def last_seq(self) -> int:
        return len(self._ends) - 1

    @property
    def nbytes(self) -> int:
        """Bytes of event JSON kept."""
        return len(self._buf)

    @property
    def readers(self) -> int:
        return len(self.followers)

    def read(self, after: int, max_bytes: int = CATCH_UP_BYTES) -> list[bytes]:
        """The UTF-8 JSON of the events with ``seq > after`` that exist now, at
        most about ``max_bytes`` of them (always at least one if any exist)."""
        ends = self._ends
        start = after + 1
        count = len(ends)
        if start >= count:
            return []
        buf = self._buf
        begin = ends[start - 1] if start else 0
        out: list[bytes] = []
        limit = begin + max_bytes
        for seq in range(start, count):
            end = ends[seq]
            if buf[begin] != 0x7B:  # not "{": a text delta's record
                record = events.delta_from_record(self._delta_head, seq, buf, begin, end)
            else:
                record = bytes(buf[begin:end])
            out.append(record)
            begin = end
            if end >= limit:
                break
        return out

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event as a dict, decoded anew on each access: for tests and
        whole answers, never for relays."""
        return [json.loads(text) for text in self.read(-1, max_bytes=1 << 62)]

    def text(self) -> str:
        """The completion's text so far (the deltas' content joined)."""
        return "".join(e["content"] for e in self.events if e["type"] == "delta")

    def last_event(self) -> dict[str, Any]:
        return json.loads(self.read(self.last_seq - 1)[0])

    # -- writing (the generating side) --------------------------------------------------

    def append(self, event: dict[str, Any]) -> None:
        """Add ``event`` (its ``seq`` must be ``last_seq + 1``) and push it to
        every follower. Ignored once the stream ended."""
        if self.ended_at is not None:
            return
        event.setdefault("t", round(time.time(), 6))  # produced-at, for delivery-delay measures
        self.append_text(events.dumps(event), events.is_terminal(event))

    def append_text(self, text: str | bytes, terminal: bool) -> None:
        """Add an already-serialised event (its JSON, or a text delta's record;
        a shared store's mirror uses this)."""
        if self.ended_at is not None:
            return
        buf = self._buf
        assert isinstance(buf, bytearray)
        buf += text.encode() if isinstance(text, str) else text
        self._ends.append(len(buf))
        if terminal:
            self._buf = bytes(buf)  # no growth room kept while it is retained
            self.ended_at = self._clock()
        self._notify_followers()
        if terminal:
            self._on_ended()

    def _notify_followers(self) -> None:
        """Push: call every follower's ``on_append`` now."""
        # A snapshot: a follower may unsubscribe itself (its connection broke).
        for follower in tuple(self.followers):
            try:
                follower.on_append(self)
            except Exception:  # a broken relay must never stop generation
                log.exception("a follower of stream %s failed", self.id)
                self.unsubscribe(follower)

    def _on_ended(self) -> None:
        waiters, self._ended_waiters = self._ended_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    # -- following ------------------------------------------------------------------------

    def subscribe(self, follower: Follower) -> None:
        self.followers.append(follower)

    def unsubscribe(self, follower: Follower) -> None:
        try:
            self.followers.remove(follower)
        except ValueError:
            return
        if not self.followers:
            self.last_read_at = self._clock()
            self._on_unread()

    def _on_unread(self) -> None:
        """Hook: the last follower left (the store starts the idle clock)."""

    async def wait_ended(self) -> None:
        """Wait for the terminal event. The waiter counts as a reader (its
        ``_Waiter`` follower), so a request waiting for a whole answer is never
        idle-cancelled. Cancelling the wait leaves the stream alone."""
        if self.ended:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._ended_waiters is None:
            self._ended_waiters = []
        self._ended_waiters.append(waiter)
        holder = _Waiter()
        self.subscribe(holder)
        try:
            await waiter
        finally:
            self.unsubscribe(holder)

    def ended_future(self) -> asyncio.Future[None]:
        """A future done at the terminal event. Unlike :meth:`wait_ended` it is
        not a reader: a stream nobody reads is still idle-cancelled."""
        future = asyncio.get_running_loop().create_future()
        if self.ended:
            future.set_result(None)
            return future
        if self._ended_waiters is None:
            self._ended_waiters = []
        self._ended_waiters.append(future)
        return future

    async def follow(self, after: int = -1) -> AsyncIterator[dict[str, Any]]:
        """Yield every event with ``seq > after`` as a dict, until the terminal
        one: a convenience over :meth:`subscribe` for code that is not a relay
        (tests, tools). Closing the iterator unsubscribes."""
        queue: asyncio.Queue[None] = asyncio.Queue()
        waker = _QueueWaker(queue)
        self.subscribe(waker)
        try:
            while True:
                for text in self.read(after, max_bytes=1 << 62):
                    event = json.loads(text)
                    after = event["seq"]
                    yield event
                if self.ended and after >= self.last_seq:
                    return
                await queue.get()
        finally:
            self.unsubscribe(waker)

    def cancel(self) -> bool:
        """Ask generation to stop. A log with no generator here ends at once
        with ``done``/``cancelled``. False if it had already ended."""
        if self.ended:
            return False
        self.append(events.done_event(self.id, self.last_seq + 1, "cancelled"))
        return True
