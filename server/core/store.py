"""The store interface a shared (Redis) store plugs into, and :class:`MemoryStreamStore`,
which keeps streams in this process: it cancels streams nobody has read for
``idle_timeout`` seconds, forgets ended ones after ``retention`` seconds (or sooner,
oldest first, past its count and byte caps), and does so in time proportional to what
expires, never by scanning every stream. ``docs/architecture.md`` describes the seam."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ..backends.base import Backend, ChatRequest
from ..config import Settings
from ..wire import errors
from .log import StreamLog, new_stream_id
from .records import MemoryRecords, Records
from .stream import Stream

log = logging.getLogger("twinstream.streams")

#: What a stream still generating when its server shuts down ends with.
SHUTDOWN_MESSAGE = "the server shut down before this stream finished"


class StreamStore(Protocol):
    """Where streams live: this process (:class:`MemoryStreamStore`) or a
    shared store. Handlers use only this interface."""

    backend: Backend

    @property
    def records(self) -> Records:
        """Small JSON records kept beside the streams (see :mod:`server.core.records`)."""
        ...

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

    async def drain(self, deadline: float) -> None:
        """Shut down: refuse new streams, let live ones run up to ``deadline`` s,
        end the rest with ``error``/``server_shutdown``, then close."""
        ...

    def hurry(self) -> None:
        """During :meth:`drain`: end the live streams generated here now."""
        ...

    async def close(self) -> None: ...


class MemoryStreamStore:
    """Streams in this process's memory.

    Bounded in time (``retention`` after a stream ends; ``idle_timeout``
    unread and it is cancelled), in count (``max_retained_streams``) and in
    bytes (``max_retained_bytes`` of ended streams' events): past a cap the
    oldest ended streams are forgotten first, and resuming them is answered
    like an expired stream. Its :attr:`records` have a budget of their own,
    as large (count and bytes), and expire from the same reaper. Expiry is
    kept in order, so creating and reaping cost the same however many streams
    are retained.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        retention: float,
        idle_timeout: float,
        max_live_streams: int,
        max_retained_streams: int,
        max_retained_bytes: int,
        reap_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        #: shutting down (:meth:`drain`): new streams are refused
        self.draining = False
        self.max_live_streams = max_live_streams
        self.max_retained_streams = max_retained_streams
        self.max_retained_bytes = max_retained_bytes
        self.retention = retention
        self.idle_timeout = idle_timeout
        self.reap_interval = reap_interval
        self._clock = clock
        # Records have their own budget, as large as the streams': count and bytes.
        self.records = MemoryRecords(
            retention, max_retained_streams, clock, max_bytes=max_retained_bytes
        )
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

    @classmethod
    def from_settings(
        cls,
        backend: Backend,
        settings: Settings,
        *,
        reap_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> MemoryStreamStore:
        """The store ``settings`` describe (``--retention``, ``--idle-timeout``, the caps)."""
        return cls(
            backend,
            retention=settings.retention,
            idle_timeout=settings.idle_timeout,
            max_live_streams=settings.max_streams,
            max_retained_streams=settings.max_retained_streams,
            max_retained_bytes=settings.max_retained_bytes,
            reap_interval=reap_interval,
            clock=clock,
        )

    def __len__(self) -> int:
        return len(self._streams)

    def live_count(self) -> int:
        return self._live

    # -- the StreamStore interface --------------------------------------------------------

    async def create(self, request: ChatRequest) -> Stream:
        return self.create_now(request)

    def create_now(self, request: ChatRequest) -> Stream:
        """Start a stream; ProtocolError ``too_many_streams`` (503) at the cap,
        ``server_shutdown`` (503) while draining."""
        if self.draining:
            raise errors.ProtocolError(
                "server_shutdown", "this server is shutting down; retry later", 503
            )
        if self._live >= self.max_live_streams:
            raise errors.ProtocolError(
                "too_many_streams", "the server is running too many streams; retry later", 503
            )
        self._live += 1
        stream = Stream(new_stream_id(), self.backend, request, clock=self._clock, store=self)
        self._streams[stream.id] = stream
        if not stream.ended:
            self.stream_unread(stream)  # nobody follows it yet
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

    def stream_ended(self, stream: Stream) -> None:
        self._live -= 1
        self._ended.append(stream)
        self.retained_bytes += stream.nbytes
        self._evict_over_caps()

    def stream_unread(self, stream: Stream) -> None:
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
        """Cancel idle streams, forget expired ones and expired records (called
        periodically). Examines only the streams and records whose deadline has passed."""
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
        examined += self.records.reap()
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

    async def drain(self, deadline: float) -> None:
        """Shut down without cutting an answer short: refuse new streams, let the
        live ones generate for up to ``deadline`` seconds (their readers keep
        reading), then end the rest with ``error``/``server_shutdown``. Nothing
        can be resumed once the process is gone: the streams live in its memory."""
        self.draining = True
        live = [task for stream in self._streams.values() if (task := stream.generating)]
        if live:
            await asyncio.wait(live, timeout=deadline)
        self.hurry()
        await self.close()

    def hurry(self) -> None:
        """End every live stream now with ``error``/``server_shutdown`` (the
        drain's deadline, or a second signal)."""
        for stream in list(self._streams.values()):
            stream.fail("server_shutdown", SHUTDOWN_MESSAGE)

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
