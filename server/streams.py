"""Streams that outlive connections.

A :class:`Stream` runs one completion in its own task and appends every event
to a numbered log (``seq`` = index). Connections are only *readers*: any
number may follow a stream from any ``seq``, come and go, and resume later
with nothing lost and nothing repeated. The :class:`MemoryStreamStore` keeps
streams for a retention time after they end and cancels streams that nobody
has read for ``idle_timeout`` seconds, so nobody pays for unread tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from . import protocol
from .backends.base import Backend, BackendError, ChatRequest, Finish

__all__ = ["Stream", "MemoryStreamStore", "new_stream_id"]

log = logging.getLogger("twinstream.streams")


def new_stream_id() -> str:
    """An unguessable id (128 random bits): knowing it is the right to read the stream."""
    return secrets.token_urlsafe(16)


class Stream:
    """One completion and its event log.

    The generation task belongs to the stream, not to any connection: when a
    reader disconnects, generation goes on. :meth:`cancel` stops it and ends
    the log with ``done``/``cancelled``.
    """

    def __init__(
        self,
        stream_id: str,
        backend: Backend,
        request: ChatRequest,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = stream_id
        self.request = request
        self.model = request.model or backend.model
        self.events: list[dict[str, Any]] = []
        # events[seq] as protocol JSON, serialised once on first use (see encoded())
        self._encoded: list[str | None] = []
        self.created_at = clock()
        self.ended_at: float | None = None
        self.last_read_at = self.created_at
        self.readers = 0
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        # Futures of readers waiting for the next event; _append resolves them.
        # Plain futures, not an asyncio.Event per append or a wait_for task per
        # wait: at 1,000 streams the per-event overhead is what limits throughput.
        self._waiters: list[asyncio.Future[bool]] = []
        self._append(protocol.start_event(stream_id, self.model, created=int(time.time())))
        self._task = self._loop.create_task(self._run(backend))
        self._task.add_done_callback(self._on_generation_finished)

    # -- state -------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def last_seq(self) -> int:
        return len(self.events) - 1

    def text(self) -> str:
        return "".join(e["content"] for e in self.events if e["type"] == "delta")

    def _append(self, event: dict[str, Any]) -> None:
        if self.ended:
            return
        event.setdefault("t", round(time.time(), 6))  # produced-at, for delivery-delay measures
        self.events.append(event)
        self._encoded.append(None)
        if protocol.is_terminal(event):
            self.ended_at = self._clock()
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def encoded(self, seq: int) -> str:
        """``events[seq]`` as protocol JSON (:func:`protocol.dumps`), serialised
        once per stream however many readers and resumes send it."""
        text = self._encoded[seq]
        if text is None:
            text = self._encoded[seq] = protocol.dumps(self.events[seq])
        return text

    async def _next_change(self, beat: _Heartbeat | None = None) -> bool:
        """Wait until an event is appended (True) or, with ``beat``, until the
        follower has been idle for its interval (False)."""
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiters.append(waiter)
        if beat is not None:
            beat.arm(waiter)
        try:
            return await waiter
        finally:
            if beat is not None:
                beat.waiter = None
            self._forget(waiter)

    def _forget(self, waiter: asyncio.Future[bool]) -> None:
        """Withdraw a waiter that _append did not resolve (timed out or cancelled)."""
        if not waiter.done():  # cancelled while waiting
            waiter.cancel()
        elif not waiter.cancelled() and waiter.result():
            # Resolved by _append, which already took it off the list (the
            # common case: no list scan, no ValueError raised and caught).
            return
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    # -- generation ----------------------------------------------------------------

    async def _run(self, backend: Backend) -> None:
        finish: Finish | None = None
        try:
            async for piece in backend.generate(self.request):
                if isinstance(piece, Finish):
                    finish = piece
                    break
                if piece:
                    self._append(protocol.delta_event_from_piece(self.id, len(self.events), piece))
        except asyncio.CancelledError:
            self._append(protocol.done_event(self.id, len(self.events), "cancelled"))
            return
        except BackendError as exc:
            self._append(protocol.error_event(self.id, len(self.events), exc.code, exc.message))
            return
        except Exception:
            log.exception("backend failed on stream %s", self.id)
            self._append(
                protocol.error_event(
                    self.id, len(self.events), "internal_error", "generation failed unexpectedly"
                )
            )
            return
        if finish is None:
            finish = Finish(reason="stop")
        extra = {"usage": finish.usage} if finish.usage else {}
        self._append(protocol.done_event(self.id, len(self.events), finish.reason, **extra))

    def _on_generation_finished(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before it first ran never saw CancelledError inside
        # _run, so nothing ended the log; end it here (no-op if already ended).
        self._append(protocol.done_event(self.id, len(self.events), "cancelled"))

    def cancel(self) -> bool:
        """Stop generation; the log ends with ``done`` (``cancelled``).

        Returns False if the stream had already ended."""
        if self.ended:
            return False
        self._task.cancel()
        return True

    async def wait_ended(self) -> None:
        """Wait for the terminal event. The waiter counts as a reader, so a
        request waiting for a whole answer is never idle-cancelled."""
        self.readers += 1
        try:
            while not self.ended:
                await self._next_change()
        finally:
            self.readers -= 1
            self.last_read_at = self._clock()

    # -- reading -------------------------------------------------------------------

    async def follow(
        self, after: int = -1, heartbeat: float | None = None
    ) -> AsyncGenerator[dict[str, Any] | None, None]:
        """Yield every event with ``seq > after``, waiting for new ones, until
        the terminal event. With ``heartbeat``, yields ``None`` after that many
        idle seconds so the caller can send a keepalive.

        While the iterator is alive the stream counts it as a reader (so it is
        not idle-cancelled); closing the iterator (e.g. the connection went
        away) releases it. It never touches generation.
        """
        self.readers += 1
        events = self.events
        # With a heartbeat, one timer per follower rather than one per wait:
        # creating and cancelling a TimerHandle for every event was a visible
        # part of the per-event cost. The timer is re-armed lazily: when it
        # fires early (events came meanwhile) it moves itself to the deadline.
        beat = _Heartbeat(self._loop, heartbeat) if heartbeat is not None else None
        try:
            next_seq = after + 1
            while True:
                while next_seq < len(events):
                    event = events[next_seq]
                    next_seq += 1
                    yield event
                if self.ended:
                    return
                # (last_read_at matters only once readers drops to 0; the
                # finally below stamps it then.)
                changed = await self._next_change(beat)
                if not changed:
                    yield None  # idle for ``heartbeat`` seconds
        finally:
            if beat is not None:
                beat.stop()
            self.readers -= 1
            self.last_read_at = self._clock()


class _Heartbeat:
    """Resolves a follower's current waiter with False once it has waited
    ``interval`` seconds, using one lazily re-armed timer per follower."""

    __slots__ = ("loop", "interval", "deadline", "waiter", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.deadline = 0.0
        self.waiter: asyncio.Future[bool] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def arm(self, waiter: asyncio.Future[bool]) -> None:
        self.waiter = waiter
        self.deadline = self.loop.time() + self.interval
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self._fire)

    def _fire(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None:
            return  # not waiting now; the next arm() starts a timer
        if self.loop.time() < self.deadline - 1e-4:  # early: events came meanwhile
            self.timer = self.loop.call_at(self.deadline, self._fire)
            return
        if not waiter.done():
            waiter.set_result(False)

    def stop(self) -> None:
        self.waiter = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class MemoryStreamStore:
    """Streams in this process's memory.

    Bounded: a stream is forgotten ``retention`` seconds after it ends, and a
    live stream with no reader for ``idle_timeout`` seconds is cancelled.
    Call :meth:`start_reaper` once the event loop runs, :meth:`close` at exit.
    """

    def __init__(
        self,
        backend: Backend,
        retention: float = 300.0,
        idle_timeout: float = 60.0,
        reap_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_live_streams: int = 10_000,
    ) -> None:
        self.backend = backend
        self.max_live_streams = max_live_streams
        self.retention = retention
        self.idle_timeout = idle_timeout
        self.reap_interval = reap_interval
        self._clock = clock
        self._streams: dict[str, Stream] = {}
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._streams)

    def live_count(self) -> int:
        return sum(1 for stream in self._streams.values() if not stream.ended)

    def create(self, request: ChatRequest) -> Stream:
        """Start a stream; ProtocolError ``too_many_streams`` (503) at the cap."""
        if self.live_count() >= self.max_live_streams:
            raise protocol.ProtocolError(
                "too_many_streams", "the server is running too many streams; retry later", 503
            )
        stream = Stream(new_stream_id(), self.backend, request, clock=self._clock)
        self._streams[stream.id] = stream
        self.start_reaper()
        return stream

    def get(self, stream_id: str) -> Stream | None:
        return self._streams.get(stream_id)

    def reap(self) -> None:
        """Cancel idle streams and forget expired ones (called periodically)."""
        now = self._clock()
        for stream_id, stream in list(self._streams.items()):
            if stream.ended_at is not None:
                if now - stream.ended_at >= self.retention:
                    del self._streams[stream_id]
            elif stream.readers == 0 and now - stream.last_read_at >= self.idle_timeout:
                log.info("cancelling stream %s: unread for %.0fs", stream_id, self.idle_timeout)
                stream.cancel()

    def start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            self.reap()

    async def close(self) -> None:
        """Cancel every live stream and the reaper."""
        for stream in self._streams.values():
            stream.cancel()
        for stream in list(self._streams.values()):
            await stream.wait_ended()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
