"""A :class:`Stream` is a log plus the task that generates it, in the process that
started it: it reads the backend's pieces, appends each as an event, and ends the log
with ``done`` or ``error``. Cancelling the task ends it with ``cancelled``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ..backends.base import Backend, BackendError, ChatRequest, Finish, close_pieces
from ..wire import events
from .log import StreamLog

log = logging.getLogger("twinstream.streams")


class StreamKeeper(Protocol):
    """What a stream tells the store that keeps it (the memory store's retention and
    idle reaping)."""

    def stream_ended(self, stream: Stream) -> None: ...

    def stream_unread(self, stream: Stream) -> None: ...


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
        store: StreamKeeper | None = None,
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
        self.append(events.start_event(stream_id, self.model, created=self.created))

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
                        record = events.delta_record(piece, round(piece_time(), 6))
                        self.append_text(record, False)
                    else:
                        event = events.delta_event_from_piece(stream_id, len(self._ends), piece)
                        event["t"] = round(piece_time(), 6)
                        self.append(event)
        except asyncio.CancelledError:
            self.append(events.done_event(stream_id, len(self._ends), "cancelled"))
            return
        except BackendError as exc:
            self.append(events.error_event(stream_id, len(self._ends), exc.code, exc.message))
            return
        except Exception:
            log.exception("backend failed on a stream")
            self.append(
                events.error_event(
                    stream_id, len(self._ends), "internal_error", "generation failed unexpectedly"
                )
            )
            return
        if finish is None:
            finish = Finish(reason="stop")
        extra = {"usage": finish.usage} if finish.usage else {}
        self.append(events.done_event(stream_id, len(self._ends), finish.reason, **extra))
        # After the done event went out; a backend whose clean-up fails is only
        # logged: the stream has ended.
        try:
            await close_pieces(pieces)
        except Exception:
            log.exception("a backend failed closing a finished generation")

    def _on_generation_finished(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before it first ran never saw CancelledError inside
        # _run, so nothing ended the log; end it here (no-op if already ended).
        self.append(events.done_event(self.id, len(self._ends), "cancelled"))
        self.request = None
        self._task = None

    def _on_ended(self) -> None:
        super()._on_ended()
        if self._store is not None:
            self._store.stream_ended(self)

    def _on_unread(self) -> None:
        if self._store is not None and not self.ended:
            self._store.stream_unread(self)

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

    def fail(self, code: str, message: str) -> None:
        """End the stream now with ``error``/``code`` (a shutdown's deadline):
        never a ``done`` that looks finished. Generation is cancelled; its own
        ``done``/``cancelled`` comes after the end and is ignored."""
        if self.ended:
            return
        self.append(events.error_event(self.id, len(self._ends), code, message))
        if self._task is not None:
            self._task.cancel()
