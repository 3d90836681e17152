"""What both transports share: the stream object callers iterate, its
statistics, the reconnect policy and URL handling."""

from __future__ import annotations

import random
import ssl
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import MalformedData, StreamError

__all__ = [
    "DEFAULT_URL",
    "ReconnectPolicy",
    "StreamStats",
    "Stream",
    "base_url",
    "chat_request",
]

DEFAULT_URL = "http://127.0.0.1:8888"
EVENT_TYPES = ("start", "delta", "done", "error")


def base_url(url: str) -> tuple[str, str, str]:
    """Split a server URL into (scheme ``http``/``https``, ``host:port``, path prefix).

    Accepts ``http(s)://`` and ``ws(s)://`` URLs, with or without a trailing
    ``/sse`` or ``/ws``, so either endpoint's URL names the server.
    """
    parts = urlsplit(url if "://" in url else "http://" + url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s):// or ws(s):// server URL: {url!r}")
    path = parts.path.rstrip("/")
    for endpoint in ("/sse", "/ws"):
        if path.endswith(endpoint):
            path = path[: -len(endpoint)]
    return scheme, parts.netloc, path


def endpoint_url(url: str, endpoint: str, websocket: bool = False) -> str:
    scheme, netloc, prefix = base_url(url)
    if websocket:
        scheme = "wss" if scheme == "https" else "ws"
    return urlunsplit((scheme, netloc, prefix + endpoint, "", ""))


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
        self._tool_fragments: list[dict[str, Any]] = []
        self.stream_id: str | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.last_seq = -1
        self.ended = False
        self.cancelled = False
        self.stats = StreamStats()
        self._parts: list[str] = []
        self._iterator: Iterator[dict[str, Any]] | None = None
        # received from the transport, not yet taken by the caller (duplicates included)
        self.queue: deque[dict[str, Any]] = deque()
        self._in_flight: dict[str, Any] | None = None  # yielded, the caller not yet back

    # -- what callers use ------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self._parts)

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
        for fragment in self._tool_fragments:
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
        if self._tool_fragments:
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
            if self._accept(event):
                yield event

    def cancel(self) -> None:
        """Ask for generation to stop. Safe from another thread."""
        raise NotImplementedError

    def reconnect(self) -> None:
        """Drop the current connection on purpose; the next read reconnects
        and resumes after the last event seen (as after a network change)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (if this stream owns it) and end iteration."""
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
        self.stats.started_at = time.monotonic()  # the request goes out now
        try:
            for event in self._raw_events():
                if self._accept(event):
                    self._in_flight = event
                    yield event
                    self._in_flight = None
                if self.ended:
                    return
        finally:
            self.stats.ended_at = time.monotonic()
            self._close_transport()

    def _accept(self, event: dict[str, Any]) -> bool:
        """Check an event, update state; False for a duplicate. Raises
        :class:`StreamError` for an ``error`` event, :class:`MalformedData`
        for one that breaks the contract."""
        kind, seq = event.get("type"), event.get("seq")
        if kind == "error" and seq is None:  # about a message, not a position in the stream
            self.ended = True
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
            self.stream_id = stream_id
            self.model = event.get("model")
        elif self.stream_id is None:
            raise MalformedData(f"{kind} event before start: {_preview(event)}")
        self.last_seq = seq
        self.stats.events += 1
        if kind == "delta":
            content = event.get("content")
            if not isinstance(content, str):
                raise MalformedData(f"delta without string content: {_preview(event)}")
            now = time.monotonic()
            if self.stats.first_token_at is None:
                self.stats.first_token_at = now
            self.stats.last_token_at = now
            self.stats.tokens += 1
            self._parts.append(content)
            tool_calls = event.get("tool_calls")
            if isinstance(tool_calls, list):
                self._tool_fragments += [t for t in tool_calls if isinstance(t, dict)]
        elif kind == "done":
            self.ended = True
            self.finish_reason = event.get("finish_reason")
            usage = event.get("usage")
            self.usage = usage if isinstance(usage, dict) else None
        elif kind == "error":
            self.ended = True
            raise StreamError(event)
        return True


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


def _preview(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unreachable_message(scheme: str, netloc: str, exc: OSError) -> str:
    """One line on why connecting failed, and what to do about it."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLError):
        return (
            f"no TLS with {netloc} ({exc.reason or reason}); if the server speaks plain "
            f"HTTP, use http://{netloc}"
        )
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"cannot connect to {netloc}: {reason}; is the server running? "
            "Start one with: python3 -m server"
        )
    return f"cannot connect to {netloc}: {reason}"


def connect_timeout_message(scheme: str, netloc: str, timeout: float) -> str:
    message = f"could not connect to {netloc} within {timeout:g} s"
    if scheme in ("https", "wss"):
        # A plain-HTTP server waits for a request line that a TLS hello never ends.
        message += f" (no TLS handshake; if the server speaks plain HTTP, use http://{netloc})"
    return message


def sleep_before_retry(policy: ReconnectPolicy, attempt: int, server_retry: float | None) -> None:
    time.sleep(policy.delay(attempt, server_retry))
