"""The stream callers iterate, shared by both transports: the request it
sends, the hand-over of events (queue, drain) and the calls to cancel or
close it. What the events mean (state, dedupe by ``seq``, text, stats) is
the :class:`~clients.session.Session` it holds."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from .session import Session, StreamState, StreamStats

__all__ = ["Stream", "chat_request"]


class Stream:
    """One completion as it arrives. Iterate it for the wire-contract events
    (``start``, ``delta``..., ``done``) as dicts; :attr:`text` is the content
    so far.

    Each event is yielded exactly once and in order, even across reconnects
    (events are deduplicated by ``seq``). An ``error`` event is raised as
    :class:`StreamError` (its ``event`` attribute holds it) instead of being
    yielded. Iteration ends after ``done``; after :meth:`cancel`, that is a
    ``done`` with ``finish_reason`` ``"cancelled"`` (or ``"stop"``/``"length"``
    if the model finished first). Leaving a ``with`` block, or :meth:`close`,
    closes the connection; generation on the server then goes on until it
    ends or idles out, unless the stream was cancelled. Read a stream from
    one thread; :meth:`cancel` may come from any.

    Events the transport has received wait in :attr:`queue` until they are
    yielded, and leave it only when the caller asks for the next one; if an
    exception such as ``KeyboardInterrupt`` (Ctrl-C) interrupts iteration,
    :meth:`drain` still hands over every event already received.
    """

    transport = ""

    def __init__(
        self,
        prompt: str | None = None,
        max_tokens: int | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> None:
        #: the Chat Completions request sent (``messages`` or the ``prompt``
        #: shorthand, ``max_tokens`` and ``params``: temperature, stop, seed, tools...)
        self.request = chat_request(prompt, max_tokens, messages, params)
        self.prompt = prompt if prompt is not None else _last_user_text(self.request["messages"])
        self.max_tokens = max_tokens
        #: the stream's state, events accepted so far, text and stats (no I/O)
        self.session = Session()
        self._iterator: Iterator[dict[str, Any]] | None = None
        # received from the transport, not yet taken by the caller (duplicates included)
        self.queue: deque[dict[str, Any]] = deque()
        self._in_flight: dict[str, Any] | None = None  # yielded, the caller not yet back

    # -- what callers use ------------------------------------------------------------

    @property
    def state(self) -> StreamState:
        return self.session.state

    @property
    def ended(self) -> bool:
        """True once the last event (``done`` or ``error``) arrived."""
        return self.session.ended

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self.session.cancelled

    @property
    def stream_id(self) -> str | None:
        return self.session.stream_id

    @property
    def model(self) -> str | None:
        return self.session.model

    @property
    def finish_reason(self) -> str | None:
        return self.session.finish_reason

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.session.usage

    @property
    def last_seq(self) -> int:
        return self.session.last_seq

    @property
    def stats(self) -> StreamStats:
        return self.session.stats

    @property
    def text(self) -> str:
        return "".join(self.session.parts)

    def shorthand(self) -> dict[str, Any] | None:
        """``{"prompt", "max_tokens"}`` when the request is one user prompt and
        nothing else (the transports' short form); else None."""
        request = self.request
        if set(request) - {"messages", "max_tokens"} or len(request["messages"]) != 1:
            return None
        message = request["messages"][0]
        if set(message) != {"role", "content"} or message["role"] != "user":
            return None
        if not isinstance(message["content"], str):
            return None
        short: dict[str, Any] = {"prompt": message["content"]}
        if self.max_tokens is not None:
            short["max_tokens"] = self.max_tokens
        return short

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls so far, their streamed fragments joined (OpenAI's
        ``{"id", "type": "function", "function": {"name", "arguments"}}``)."""
        calls: dict[int, dict[str, Any]] = {}
        for fragment in self.session.tool_fragments:
            call = calls.setdefault(
                fragment.get("index", 0),
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            call["id"] = fragment.get("id") or call["id"]
            function = fragment.get("function") or {}
            call["function"]["name"] = function.get("name") or call["function"]["name"]
            call["function"]["arguments"] += function.get("arguments") or ""
        return [calls[index] for index in sorted(calls)]

    def message(self) -> dict[str, Any]:
        """The reply as an ``assistant`` message, to append to a conversation."""
        reply: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.session.tool_fragments:
            reply["tool_calls"] = self.tool_calls
            reply["content"] = self.text or None
        return reply

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def __next__(self) -> dict[str, Any]:
        return next(iter(self))

    def deltas(self) -> Iterator[str]:
        """Yield the content of each ``delta`` event as it arrives."""
        for event in self:
            if event["type"] == "delta":
                yield event["content"]

    def collect(self) -> str:
        """Read the stream to its end and return the whole text."""
        for _ in self:
            pass
        return self.text

    def drain(self) -> Iterator[dict[str, Any]]:
        """The events already received but not yet taken, without reading
        more: for after iteration was interrupted (e.g. by Ctrl-C) part way
        through what one read brought. They are checked and recorded (text,
        stats, ``seq``) as iteration does. The first may be the event the
        interrupted loop had been handed (it had not asked for the next one),
        so a caller that may have handled it should compare ``seq``."""
        event, self._in_flight = self._in_flight, None
        if event is not None:
            if self.queue and self.queue[0] is event:
                self.queue.popleft()
            yield event
        while self.queue and not self.ended:
            event = self.queue.popleft()
            if self.session.accept(event):
                yield event

    def cancel(self) -> None:
        """Ask for generation to stop; iteration then ends with ``done``
        (``finish_reason`` ``cancelled``, or how the model finished first).
        Before reading started, nothing is sent and iteration yields nothing.
        Safe from another thread."""
        raise NotImplementedError

    def reconnect(self) -> None:
        """Drop the current connection on purpose; the next read reconnects
        and resumes after the last event seen (as after a network change)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (if this stream owns it) and end iteration.
        Nothing is sent: unless the stream was cancelled, generation on the
        server goes on until it ends or idles out."""
        if self._iterator is not None and hasattr(self._iterator, "close"):
            self._iterator.close()
        self._close_transport()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transports implement -----------------------------------------------------------

    def _raw_events(self) -> Iterator[dict[str, Any]]:
        """Events as received, duplicates included, reconnecting as needed."""
        raise NotImplementedError

    def _close_transport(self) -> None:
        pass

    def _queued(self) -> Iterator[dict[str, Any]]:
        """Yield :attr:`queue` in order, for a transport's ``_raw_events``.
        Each event leaves the queue only when the next one is asked for, so
        an interruption in between leaves it to :meth:`drain`."""
        while self.queue:
            event = self.queue[0]
            yield event
            if self.queue and self.queue[0] is event:  # drain() may have taken it
                self.queue.popleft()

    # -- shared machinery -----------------------------------------------------------------

    def _run(self) -> Iterator[dict[str, Any]]:
        if self.cancelled:
            return  # cancelled before anything was sent: nothing to read
        self.session.open()
        self.stats.started_at = time.monotonic()  # the request goes out now
        try:
            for event in self._raw_events():
                if self.session.accept(event):
                    self._in_flight = event
                    yield event
                    self._in_flight = None
                if self.ended:
                    return
        finally:
            self.stats.ended_at = time.monotonic()
            self._close_transport()


def chat_request(
    prompt: str | None,
    max_tokens: int | None,
    messages: Sequence[Mapping[str, Any]] | None,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The request object both transports send (docs/protocol.md): a
    conversation (``messages``) or one ``prompt``, and the parameters."""
    if (prompt is None) == (messages is None):
        raise ValueError("give a prompt or messages=[...], not both and not neither")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise TypeError("the prompt must be a str")
        request: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}]}
    else:
        assert messages is not None
        request = {"messages": [dict(message) for message in messages]}
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    request.update({key: value for key, value in params.items() if value is not None})
    return request


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""
