"""A stream generated in this process, written through to Redis."""

from __future__ import annotations

import time
from typing import Any, Protocol

from ...backends.base import Backend, BackendError, ChatRequest
from ...core.log import CATCH_UP_BYTES, StreamLog
from ...core.stream import Stream
from ...wire import events
from .keys import is_terminal_text

__all__ = ["Enqueuer", "RedisStream", "StreamHost", "end_locally"]

INTERRUPTED_MESSAGE = "the process generating this stream stopped; start it again"


class Enqueuer(Protocol):
    """Where a stream's appends are queued for Redis (the store's WriteBatcher)."""

    def enqueue(self, stream: RedisStream, seq: int, item: str | bytes, terminal: bool) -> None: ...


class StreamHost(Protocol):
    """What a :class:`RedisStream` uses of the store that generates it (the
    Redis store has these members: it satisfies this structurally)."""

    @property
    def token(self) -> str: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def max_events(self) -> int: ...

    @property
    def batcher(self) -> Enqueuer: ...


class RedisStream(Stream):
    """A stream generated in this process: the core's :class:`Stream` (its
    generation task, its log), whose every append is queued for Redis.

    Write-through: followers, here as anywhere, see an event only once Redis
    holds it (``last_seq``, ``ended`` and ``read`` stop at what Redis
    confirmed). So whatever a client has seen, any process can resume after
    it, and a generator that dies can never have shown a client events that
    the shared log does not have. While Redis is unreachable the log is
    served from memory as it is (its streams end with ``store_unavailable``).

    ``end_reason`` turns the ``done``/``cancelled`` that a cancelled
    generation appends into an ``error`` (drain deadline: code
    ``server_shutdown``; Redis lost: ``store_unavailable``)."""

    __slots__ = (
        "owner",
        "epoch",
        "end_reason",
        "_redis_store",
        "_confirmed",
        "_confirmed_end",
        "_fresh",
        "fenced",
    )

    local = True
    shared = True  # a resume past its end is a lost tail (handlers/resume.py)

    def __init__(self, store: StreamHost, stream_id: str, request: ChatRequest) -> None:
        self._redis_store = store
        self.owner = store.token
        # The fence written with the stream's meta; bumped (by whoever declares
        # the stream dead) past this one, the append script refuses our writes.
        self.epoch = "1"
        self.fenced = False  # Redis refused it for good: nothing more is appended here
        self.end_reason: tuple[str, str] | None = None
        self._confirmed = -1  # the last seq Redis holds (or that may be shown)
        self._confirmed_end = False
        # While confirm() pushes a batch just written: its first seq and its
        # events' JSON as sent to Redis, so followers reading it are not given a
        # second expansion of the same delta records (see read()).
        self._fresh: tuple[int, list[bytes]] | None = None
        super().__init__(stream_id, store.backend, request)

    # -- what followers see: only what Redis holds -----------------------------------

    @property
    def last_seq(self) -> int:
        return self._confirmed

    @property
    def ended(self) -> bool:
        return self._confirmed_end

    def read(self, after: int, max_bytes: int = CATCH_UP_BYTES) -> list[bytes]:
        confirmed = self._confirmed
        if after >= confirmed:
            return []
        fresh = self._fresh
        if fresh is not None and fresh[0] <= after + 1 and fresh[0] + len(fresh[1]) > confirmed:
            return self._read_fresh(after, max_bytes, *fresh)
        return super().read(after, max_bytes)[: confirmed - after]

    def _read_fresh(
        self, after: int, max_bytes: int, first: int, texts: list[bytes]
    ) -> list[bytes]:
        # StreamLog.read's byte budget, counted on the log's own offsets (so the
        # same events are returned), with each event's bytes taken from the batch.
        ends = self._ends
        limit = (ends[after] if after >= 0 else 0) + max_bytes
        out: list[bytes] = []
        for seq in range(after + 1, self._confirmed + 1):
            out.append(texts[seq - first])
            if ends[seq] >= limit:
                break
        return out

    def confirm(self, seq: int, written: list[bytes] | None = None) -> None:
        """Events up to ``seq`` are in Redis (or may be shown anyway): push them.
        ``written``: the JSON of the events up to ``seq`` just written (the
        batcher's), which followers reading now are given as they are."""
        if seq <= self._confirmed:
            return
        self._confirmed = seq
        if self.ended_at is not None and seq == len(self._ends) - 1:
            self._confirmed_end = True
        if written:
            self._fresh = (seq - len(written) + 1, written)
        try:
            self._notify_followers()
        finally:
            self._fresh = None
        if self._confirmed_end:
            super()._on_ended()  # resolve wait_ended() now that the end is shown

    def confirm_all(self) -> None:
        self.confirm(len(self._ends) - 1)

    def expand(self, first: int, items: list[str | bytes]) -> list[bytes]:
        """The JSON of events ``first, first + 1, ...`` from what was appended:
        the log keeps text deltas as records (short), Redis gets the JSON."""
        head = self._delta_head
        out: list[bytes] = []
        for seq, item in enumerate(items, first):
            if isinstance(item, str):
                out.append(item.encode())
            elif events.is_delta_record(item):
                out.append(events.delta_from_record(head, seq, item))
            else:
                out.append(item)
        return out

    def items(self, first: int, stop: int) -> list[str | bytes]:
        """The JSON of events ``first .. stop - 1`` as this log holds them,
        whether confirmed or not (a lost tail written again)."""
        return list(StreamLog.read(self, first - 1, 1 << 62)[: stop - first])

    # -- appends: queued for Redis, shown when confirmed -------------------------------

    def append(self, event: dict[str, Any]) -> None:
        if self.ended_at is None and self.end_reason is not None:
            if event.get("finish_reason") == "cancelled":
                event = events.error_event(self.id, len(self._ends), *self.end_reason)
        super().append(event)

    def append_text(self, text: str | bytes, terminal: bool) -> None:
        if self.ended_at is not None or self.fenced:
            return
        store = self._redis_store
        seq = len(self._ends)
        if not terminal and seq >= store.max_events - 1:
            # Raised inside the generation loop (deltas are appended only
            # there), which ends the log with this error.
            raise BackendError(
                "stream_too_long",
                f"the stream reached the server's limit of {store.max_events} events",
            )
        # Into the log without pushing: followers hear of it in confirm().
        followers, self.followers = self.followers, []
        try:
            super().append_text(text, terminal)
        finally:
            self.followers = followers
        # As appended (a delta record stays a record): the batcher expands a
        # batch once, when it writes it.
        store.batcher.enqueue(self, seq, text, terminal)

    def _on_ended(self) -> None:
        pass  # deferred to confirm(): the end is not shown before Redis has it

    def fence(self) -> None:
        """Redis refused the stream for good (someone declared it dead): stop
        appending, and forget what Redis never confirmed (no reader saw it), so
        that what follows can be the log as Redis holds it (:meth:`adopt`)."""
        self.fenced = True
        keep = self._confirmed + 1
        if keep < len(self._ends):
            self._buf = bytearray(self._buf[: self._ends[keep - 1] if keep else 0])
            del self._ends[keep:]
            self.ended_at = None

    def adopt(self, texts: list[str]) -> None:
        """After :meth:`fence`: the events Redis holds after the confirmed ones
        (ending with whoever's terminal event), shown to this process's readers."""
        for text in texts:
            if self.ended_at is None:
                StreamLog.append_text(self, text, is_terminal_text(text))
        if self.ended_at is None:
            self.end_here("interrupted", INTERRUPTED_MESSAGE)
        self.confirm_all()

    def end_here(self, code: str, message: str) -> None:
        """End the log for this process's readers only (nothing goes to Redis)."""
        if self.ended_at is None:
            event = events.error_event(
                self.id, len(self._ends), code, message, t=round(time.time(), 6)
            )
            followers, self.followers = self.followers, []
            try:
                StreamLog.append_text(self, events.dumps(event), True)
            finally:
                self.followers = followers
        self.confirm_all()


def end_locally(stream: StreamLog, code: str, message: str) -> None:
    """End a log for this process's readers with ``error``/``code``."""
    if not stream.ended:
        event = events.error_event(
            stream.id, stream.last_seq + 1, code, message, t=round(time.time(), 6)
        )
        StreamLog.append_text(stream, events.dumps(event), True)
