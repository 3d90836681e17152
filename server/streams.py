"""Streams that outlive connections.

A :class:`StreamLog` is one completion's numbered event log (``seq`` = index),
each event kept once, as the protocol JSON that is sent. Connections are only
*followers*: any number may follow a stream from any ``seq``, come and go,
and resume later with nothing lost and nothing repeated. Appending pushes:
each caught-up follower is called synchronously and writes the event to its
connection at once, so no task wakes per event per follower.

A :class:`Stream` is a log plus the task that generates it, in the process
that started it. :class:`MemoryStreamStore` keeps streams in this process:
it cancels streams nobody has read for ``idle_timeout`` seconds, forgets
ended ones after ``retention`` seconds (or sooner, oldest first, past its
count and byte caps), and does so in time proportional to what expires,
never by scanning every stream.

The store/log interface here is the seam a shared (Redis) store plugs into;
``docs/architecture.md`` describes it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import time
from array import array
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from . import protocol
from .backends.base import Backend, BackendError, ChatRequest, Finish, close_pieces

__all__ = [
    "Follower",
    "StreamLog",
    "Stream",
    "StreamStore",
    "MemoryStreamStore",
    "new_stream_id",
]

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
        # deltas are kept as records (protocol.delta_record: the JSON without
        # the head all deltas share); read() restores the sent bytes. Frozen
        # to bytes (trimmed) when the stream ends.
        self._buf: bytearray | bytes = bytearray()
        self._ends = array("I")
        self._delta_head = protocol.delta_head(stream_id)
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
                record = protocol.delta_from_record(self._delta_head, seq, buf, begin, end)
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
        self.append_text(protocol.dumps(event), protocol.is_terminal(event))

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
        self.append(protocol.done_event(self.id, self.last_seq + 1, "cancelled"))
        return True


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


class Stream(StreamLog):
    """A log and the task that generates it.

    The generation task belongs to the stream, not to any connection: when a
    follower disconnects, generation goes on. :meth:`cancel` stops it and ends
    the log with ``done``/``cancelled``. Once generation is over the request
    (the user's messages) and the task are let go: an ended stream is kept
    only for its log.
    """

    __slots__ = ("request", "_task", "_store")

    def __init__(
        self,
        stream_id: str,
        backend: Backend,
        request: ChatRequest,
        clock: Callable[[], float] = time.monotonic,
        store: MemoryStreamStore | None = None,
    ) -> None:
        super().__init__(stream_id, request.model or backend.model, clock)
        self.request: ChatRequest | None = request
        self._store = store
        # The generation's task first, so the start event is stamped as late as
        # it can be: its first step runs on a later loop turn (an eager task
        # factory would break that, and would append a delta before start).
        task = asyncio.get_running_loop().create_task(self._run(backend, request))
        task.add_done_callback(self._on_generation_finished)
        self._task: asyncio.Task[None] | None = task
        self.append(protocol.start_event(stream_id, self.model, created=self.created))

    async def _run(self, backend: Backend, request: ChatRequest) -> None:
        finish: Finish | None = None
        stream_id = self.id
        piece_time = getattr(backend, "piece_time", time.time)
        pieces = backend.generate(request)
        try:
            async for piece in pieces:
                if isinstance(piece, Finish):
                    finish = piece
                    break
                if piece:
                    if isinstance(piece, str):
                        record = protocol.delta_record(piece, round(piece_time(), 6))
                        self.append_text(record, False)
                    else:
                        event = protocol.delta_event_from_piece(stream_id, len(self._ends), piece)
                        event["t"] = round(piece_time(), 6)
                        self.append(event)
        except asyncio.CancelledError:
            self.append(protocol.done_event(stream_id, len(self._ends), "cancelled"))
            return
        except BackendError as exc:
            self.append(protocol.error_event(stream_id, len(self._ends), exc.code, exc.message))
            return
        except Exception:
            log.exception("backend failed on a stream")
            self.append(
                protocol.error_event(
                    stream_id, len(self._ends), "internal_error", "generation failed unexpectedly"
                )
            )
            return
        if finish is None:
            finish = Finish(reason="stop")
        extra = {"usage": finish.usage} if finish.usage else {}
        self.append(protocol.done_event(stream_id, len(self._ends), finish.reason, **extra))
        # After the done event went out; a backend whose clean-up fails is only
        # logged: the stream has ended.
        try:
            await close_pieces(pieces)
        except Exception:
            log.exception("a backend failed closing a finished generation")

    def _on_generation_finished(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before it first ran never saw CancelledError inside
        # _run, so nothing ended the log; end it here (no-op if already ended).
        self.append(protocol.done_event(self.id, len(self._ends), "cancelled"))
        self.request = None
        self._task = None

    def _on_ended(self) -> None:
        super()._on_ended()
        if self._store is not None:
            self._store._stream_ended(self)

    def _on_unread(self) -> None:
        if self._store is not None and not self.ended:
            self._store._stream_unread(self)

    @property
    def generating(self) -> asyncio.Task[None] | None:
        """The generation task while it runs; None once it finished."""
        task = self._task
        return task if task is not None and not task.done() else None

    def cancel(self) -> bool:
        if self.ended or self._task is None:
            return False
        self._task.cancel()
        return True


class StreamStore(Protocol):
    """Where streams live: this process (:class:`MemoryStreamStore`) or a
    shared store. Handlers use only this interface."""

    backend: Backend

    def __len__(self) -> int:
        """How many streams are kept (live and ended)."""
        ...

    async def create(self, request: ChatRequest) -> StreamLog:
        """Start a stream generating here; ProtocolError (503) if refused."""
        ...

    async def open(self, stream_id: str) -> StreamLog | None:
        """The stream to follow, or None if unknown, expired or evicted."""
        ...

    async def cancel(self, stream_id: str) -> bool | None:
        """Stop a stream's generation: True, False if it had ended, None if unknown."""
        ...

    def start(self) -> None: ...

    async def close(self) -> None: ...


class MemoryStreamStore:
    """Streams in this process's memory.

    Bounded in time (``retention`` after a stream ends; ``idle_timeout``
    unread and it is cancelled), in count (``max_retained_streams``) and in
    bytes (``max_retained_bytes`` of ended streams' events): past a cap the
    oldest ended streams are forgotten first, and resuming them is answered
    like an expired stream. Expiry is kept in order, so creating and reaping
    cost the same however many streams are retained.
    """

    def __init__(
        self,
        backend: Backend,
        retention: float = 300.0,
        idle_timeout: float = 60.0,
        reap_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_live_streams: int = 10_000,
        max_retained_streams: int = 100_000,
        max_retained_bytes: int = 256 << 20,
    ) -> None:
        self.backend = backend
        self.max_live_streams = max_live_streams
        self.max_retained_streams = max_retained_streams
        self.max_retained_bytes = max_retained_bytes
        self.retention = retention
        self.idle_timeout = idle_timeout
        self.reap_interval = reap_interval
        self._clock = clock
        self._streams: dict[str, Stream] = {}
        self._live = 0
        #: bytes of the ended streams still kept
        self.retained_bytes = 0
        # Both queues are in deadline order because retention and idle_timeout
        # are constants: the reaper pops from the left only what is due.
        self._ended: collections.deque[Stream] = collections.deque()
        self._unread: collections.deque[tuple[float, Stream]] = collections.deque()
        self._reaper: asyncio.Task[None] | None = None
        #: streams the last reap() examined (a cost measure for tests)
        self.last_reap_examined = 0

    def __len__(self) -> int:
        return len(self._streams)

    def live_count(self) -> int:
        return self._live

    # -- the StreamStore interface --------------------------------------------------------

    async def create(self, request: ChatRequest) -> Stream:
        return self.create_now(request)

    def create_now(self, request: ChatRequest) -> Stream:
        """Start a stream; ProtocolError ``too_many_streams`` (503) at the cap."""
        if self._live >= self.max_live_streams:
            raise protocol.ProtocolError(
                "too_many_streams", "the server is running too many streams; retry later", 503
            )
        self._live += 1
        stream = Stream(new_stream_id(), self.backend, request, clock=self._clock, store=self)
        self._streams[stream.id] = stream
        if not stream.ended:
            self._stream_unread(stream)  # nobody follows it yet
        self._evict_over_caps()
        self.start()
        return stream

    async def open(self, stream_id: str) -> Stream | None:
        return self._streams.get(stream_id)

    def get(self, stream_id: str) -> Stream | None:
        return self._streams.get(stream_id)

    async def cancel(self, stream_id: str) -> bool | None:
        stream = self._streams.get(stream_id)
        return None if stream is None else stream.cancel()

    # -- bookkeeping (called by Stream) ------------------------------------------------------

    def _stream_ended(self, stream: Stream) -> None:
        self._live -= 1
        self._ended.append(stream)
        self.retained_bytes += stream.nbytes
        self._evict_over_caps()

    def _stream_unread(self, stream: Stream) -> None:
        self._unread.append((stream.last_read_at + self.idle_timeout, stream))

    def _forget_oldest_ended(self) -> None:
        stream = self._ended.popleft()
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]
        self.retained_bytes -= stream.nbytes

    def _evict_over_caps(self) -> None:
        while self._ended and (
            len(self._streams) > self.max_retained_streams
            or self.retained_bytes > self.max_retained_bytes
        ):
            self._forget_oldest_ended()

    def reap(self) -> None:
        """Cancel idle streams and forget expired ones (called periodically).
        Examines only the streams whose deadline has passed."""
        now = self._clock()
        examined = 0
        ended = self._ended
        while ended and now - (ended[0].ended_at or now) >= self.retention:
            examined += 1
            self._forget_oldest_ended()
        unread = self._unread
        while unread and unread[0][0] <= now:
            examined += 1
            _, stream = unread.popleft()
            # A stale entry: the stream was read again since, or ended.
            if stream.ended or stream.readers or now - stream.last_read_at < self.idle_timeout:
                continue
            log.info("cancelling a stream: unread for %.0fs", self.idle_timeout)
            stream.cancel()
        self.last_reap_examined = examined

    def start(self) -> None:
        """Start the reaper (idempotent; needs a running loop)."""
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    start_reaper = start

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            self.reap()

    async def close(self) -> None:
        """Cancel every live stream and the reaper."""
        live = [stream for stream in self._streams.values() if not stream.ended]
        for stream in live:
            stream.cancel()
        for stream in live:
            await stream.wait_ended()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
