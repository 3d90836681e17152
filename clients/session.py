"""One stream's progress, with no I/O: what both transports decide the same way.

* :class:`Session` accepts the events of one stream: it checks them against
  the wire contract, drops the ones already seen (by ``seq``, as a resumed
  connection repeats them), keeps the text and the stats, and moves through
  :class:`StreamState`; cancelling is tracked in :class:`CancelState`.
* :class:`Reconnects` is the one reconnect decision: after a failure, try
  again (after how long) or give up (and why), counting attempts against a
  :class:`ReconnectPolicy`. A resumed connection asks for the events after
  :attr:`Session.last_seq`.

No sockets, threads or event loops here; the transports (``sse_client``,
``ws_client``) do the I/O and word the errors their own way.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from .errors import (
    ClientError,
    ConnectionLost,
    Dropped,
    HTTPStatusError,
    MalformedData,
    ResumeFailed,
    ServerUnreachable,
    StreamError,
    Timeout,
)

__all__ = [
    "EVENT_TYPES",
    "StreamState",
    "CancelState",
    "InvalidTransition",
    "StreamStats",
    "Session",
    "ReconnectPolicy",
    "Verdict",
    "Decision",
    "Reconnects",
    "reconnecting_off",
    "gave_up",
]

EVENT_TYPES = ("start", "delta", "done", "error")


class InvalidTransition(RuntimeError):
    """A state change that cannot happen (a bug in a transport, not a server fault)."""


class StreamState(Enum):
    """Where one stream is. Transitions (methods of :class:`Session`)::

        NEW --open--> OPENING --bind--> STREAMING --end--> ENDED
                         |                              ^
                         +------------- end ------------+

    ``bind`` happens when the stream's id is known (its ``start`` event, or a
    WebSocket routing that event); from then on a drop can be resumed.
    ``end`` comes with ``done`` or ``error``, or when the stream can no longer
    be had. ENDED is terminal: later transitions leave it as it is.
    """

    NEW = "new"  #: nothing sent yet
    OPENING = "opening"  #: the request went out; no ``start`` yet, so nothing to resume
    STREAMING = "streaming"  #: the server named the stream: a drop resumes after last_seq
    ENDED = "ended"  #: the last event arrived (or the stream is gone): read no more


_STREAM_MOVES: dict[tuple[StreamState, str], StreamState] = {
    (StreamState.NEW, "open"): StreamState.OPENING,
    (StreamState.OPENING, "bind"): StreamState.STREAMING,
    # a WebSocket binds when it routes the start event; accepting that event binds again
    (StreamState.STREAMING, "bind"): StreamState.STREAMING,
    (StreamState.OPENING, "end"): StreamState.ENDED,
    (StreamState.STREAMING, "end"): StreamState.ENDED,
}


class CancelState(Enum):
    """Whether the caller asked to stop, and what became of the request::

        NOT_ASKED --ask--> ASKED --claim--> SENT --undelivered--> UNDELIVERED

    ``claim`` is the once-only hand-over of the request to a transport (over
    SSE, ``POST /cancel``; a WebSocket sends ``cancel`` without claiming).
    UNDELIVERED: the server could not be asked, so the transport closed the
    connection instead and stops reading without the end (the server stops
    generating only at its idle timeout).
    """

    NOT_ASKED = "not asked"
    ASKED = "asked"  #: wanted; goes out once the stream's id is known
    SENT = "sent"
    UNDELIVERED = "undelivered"


@dataclass
class StreamStats:
    """Measured on the client, from when reading starts (the request goes
    out). Times are ``time.monotonic()`` seconds; ``bytes_received`` counts
    what the transport carried for this stream (SSE: response body bytes;
    WebSocket: message payload bytes); ``reconnects`` counts attempts."""

    started_at: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_token_at: float | None = None
    ended_at: float | None = None
    events: int = 0
    tokens: int = 0
    bytes_received: int = 0
    reconnects: int = 0

    @property
    def time_to_first_token(self) -> float | None:
        if self.first_token_at is None:
            return None
        return self.first_token_at - self.started_at

    @property
    def tokens_per_second(self) -> float | None:
        """Delta events per second between the first and the last one."""
        if self.first_token_at is None or self.last_token_at is None or self.tokens < 2:
            return None
        elapsed = self.last_token_at - self.first_token_at
        return (self.tokens - 1) / elapsed if elapsed > 0 else None

    def summary(self) -> str:
        """One line for people, e.g. for ``--stats``."""
        ttft = self.time_to_first_token
        rate = self.tokens_per_second
        parts = [
            f"time to first token {ttft * 1000:.1f} ms" if ttft is not None else "no tokens",
            f"{rate:.1f} tokens/s" if rate is not None else "tokens/s n/a",
            f"{self.tokens} tokens",
            f"{self.events} events",
            f"{self.bytes_received} bytes received",
            f"{self.reconnects} reconnects",
        ]
        return ", ".join(parts)


class Session:
    """The state of one stream as its events arrive.

    :meth:`accept` is the only way events come in. The reading thread moves
    :attr:`state`; :attr:`cancel` may be moved from another thread (each
    enum is replaced in one assignment, so readers see one or the other).
    """

    def __init__(self) -> None:
        self.state = StreamState.NEW
        self.cancel = CancelState.NOT_ASKED
        self.stream_id: str | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.last_seq = -1  #: of the last event accepted; a resume asks for what follows
        self.parts: list[str] = []
        self.tool_fragments: list[dict[str, Any]] = []
        self.stats = StreamStats()

    # -- stream state ------------------------------------------------------------------

    def _move(self, transition: str) -> None:
        if self.state is StreamState.ENDED:
            return  # terminal
        try:
            self.state = _STREAM_MOVES[self.state, transition]
        except KeyError:
            raise InvalidTransition(f"cannot {transition} a stream that is {self.state.value}")

    def open(self) -> None:
        """The request goes out."""
        self._move("open")

    def bind(self, stream_id: str) -> None:
        """The server named the stream: from now on it can be resumed."""
        self._move("bind")
        self.stream_id = stream_id

    def end(self) -> None:
        """The stream is over: its last event arrived, or it can no longer be had."""
        self._move("end")

    @property
    def ended(self) -> bool:
        return self.state is StreamState.ENDED

    @property
    def resumable(self) -> bool:
        """True once the stream has an id: a new connection can ask for the
        events after :attr:`last_seq`."""
        return self.stream_id is not None

    # -- cancel state --------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once cancelling was asked for (whatever became of it)."""
        return self.cancel is not CancelState.NOT_ASKED

    @property
    def abandoned(self) -> bool:
        """True if the cancel could not be delivered: stop reading now."""
        return self.cancel is CancelState.UNDELIVERED

    def ask_cancel(self) -> None:
        if self.cancel is CancelState.NOT_ASKED:
            self.cancel = CancelState.ASKED

    def claim_cancel(self) -> bool:
        """True once, when the cancel request is due (asked, the stream named
        and not over) and not yet claimed; the caller then sends it. Call it
        under the transport's lock when two threads may race."""
        if self.cancel is not CancelState.ASKED or self.stream_id is None or self.ended:
            return False
        self.cancel = CancelState.SENT
        return True

    def cancel_undelivered(self) -> None:
        if self.cancel is CancelState.SENT:
            self.cancel = CancelState.UNDELIVERED

    # -- events -----------------------------------------------------------------------------

    def accept(self, event: dict[str, Any]) -> bool:
        """Check an event, update state; False for a duplicate. Raises
        :class:`StreamError` for an ``error`` event, :class:`MalformedData`
        for one that breaks the contract."""
        kind, seq = event.get("type"), event.get("seq")
        if kind == "error" and seq is None:  # about a message, not a position in the stream
            self.end()
            raise StreamError(event)
        if kind not in EVENT_TYPES or isinstance(seq, bool) or not isinstance(seq, int):
            raise MalformedData(f"not a twinstream event: {_preview(event)}")
        if self.stream_id is not None and event.get("stream") != self.stream_id:
            raise MalformedData(f"event of another stream: {_preview(event)}")
        if seq <= self.last_seq:
            return False  # already delivered before a reconnect
        if seq != self.last_seq + 1:
            raise MalformedData(f"events {self.last_seq + 1}..{seq - 1} are missing")
        if kind == "start":
            stream_id = event.get("stream")
            if not isinstance(stream_id, str) or not stream_id:
                raise MalformedData(f"start event without a stream id: {_preview(event)}")
            self.bind(stream_id)
            self.model = event.get("model")
        elif self.stream_id is None:
            raise MalformedData(f"{kind} event before start: {_preview(event)}")
        self.last_seq = seq
        self.stats.events += 1
        if kind == "delta":
            self._delta(event)
        elif kind == "done":
            self.end()
            self.finish_reason = event.get("finish_reason")
            usage = event.get("usage")
            self.usage = usage if isinstance(usage, dict) else None
        elif kind == "error":
            self.end()
            raise StreamError(event)
        return True

    def _delta(self, event: dict[str, Any]) -> None:
        content = event.get("content")
        if not isinstance(content, str):
            raise MalformedData(f"delta without string content: {_preview(event)}")
        now = time.monotonic()
        if self.stats.first_token_at is None:
            self.stats.first_token_at = now
        self.stats.last_token_at = now
        self.stats.tokens += 1
        self.parts.append(content)
        tool_calls = event.get("tool_calls")
        if isinstance(tool_calls, list):
            self.tool_fragments += [t for t in tool_calls if isinstance(t, dict)]


# -- reconnecting ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a stream reconnects after its connection drops.

    Up to ``max_attempts`` consecutive failed attempts (0: never reconnect);
    the count starts again once a resumed connection delivers an event. The
    n-th wait is ``base * 2**(n-1)`` capped at ``max_delay``, where ``base``
    is the server's SSE ``retry`` hint if it sent one, else ``initial_delay``;
    then up to ``jitter`` of it is randomly taken off so clients that lost
    the same server do not all come back at once.
    """

    max_attempts: int = 5
    initial_delay: float = 0.25
    max_delay: float = 10.0
    jitter: float = 0.5

    def delay(self, attempt: int, server_retry: float | None = None) -> float:
        base = self.initial_delay if server_retry is None else server_retry
        wait = min(self.max_delay, base * 2 ** max(0, attempt - 1))
        return wait * (1.0 - self.jitter * random.random())


class Verdict(Enum):
    """What to do after a connection failed, in the order they are decided."""

    NOTHING_TO_RESUME = "nothing to resume"  #: no start event yet: the stream has no id
    REFUSED = "refused"  #: the server refused (HTTP 4xx, not the protocol): retrying won't help
    RECONNECTING_OFF = "reconnecting is off"  #: the policy allows no attempts
    GAVE_UP = "gave up"  #: the attempts ran out
    RETRY = "retry"  #: wait ``delay`` seconds, reconnect, resume after last_seq


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    attempts: int  #: consecutive failed attempts so far (RETRY: the number of the next one)
    delay: float = 0.0  #: seconds to wait first (RETRY only)


#: failures a new connection may cure (with HTTP 5xx: a server restarting)
RETRYABLE = (Dropped, Timeout, ServerUnreachable)


class Reconnects:
    """The reconnect decision both transports share: one per connection that
    can drop (an SSE stream; a WebSocket client, for all its streams).

    :meth:`decide` after each failure (of a connection, or of an attempt to
    make a new one); :meth:`delivered` when a connection brings an event,
    which starts the count again.
    """

    def __init__(self, policy: ReconnectPolicy) -> None:
        self.policy = policy
        self.failures = 0  #: consecutive failed attempts

    def delivered(self) -> None:
        self.failures = 0

    def decide(
        self, exc: ClientError, *, resumable: bool, server_retry: float | None = None
    ) -> Decision:
        """The verdict on ``exc``; a RETRY counts as one more attempt."""
        if not resumable:
            return Decision(Verdict.NOTHING_TO_RESUME, self.failures)
        retryable = isinstance(exc, RETRYABLE) or (
            isinstance(exc, HTTPStatusError) and exc.status >= 500
        )
        if not retryable:
            return Decision(Verdict.REFUSED, self.failures)
        if self.policy.max_attempts <= 0:
            return Decision(Verdict.RECONNECTING_OFF, self.failures)
        self.failures += 1
        if self.failures > self.policy.max_attempts:
            return Decision(Verdict.GAVE_UP, self.policy.max_attempts)
        return Decision(
            Verdict.RETRY, self.failures, self.policy.delay(self.failures, server_retry)
        )


def reconnecting_off(exc: ClientError) -> ClientError:
    """The error for a drop when the policy allows no attempts: a drop says
    so; any other failure (a timeout...) stands as it is."""
    if isinstance(exc, Dropped):
        return _caused(ConnectionLost(f"{exc}; reconnecting is off"), None)
    return exc


def gave_up(exc: ClientError, attempts: int) -> ResumeFailed:
    """The error when the attempts ran out; ``__cause__`` is the last failure."""
    return _caused(
        ResumeFailed(f"gave up resuming after {attempts} attempts: {exc}", attempts), exc
    )


_E = TypeVar("_E", bound=ClientError)


def _caused(error: _E, cause: BaseException | None) -> _E:
    """``error`` as ``raise error from cause`` leaves it (``None``: no context shown)."""
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


def _preview(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
