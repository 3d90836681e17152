"""Server-Sent Events encoder: pure functions from fields to bytes, no I/O.

Follows the WHATWG HTML "Server-sent events" section (event stream format).
The matching decoder lives in :mod:`clients.sse`.
"""

from __future__ import annotations

import zlib

__all__ = [
    "encode_event",
    "encode_comment",
    "format_trusted_event",
    "format_events",
    "format_trusted_data",
    "accepts_gzip",
    "SyncFlushGzip",
]


def _check_single_line(name: str, value: str) -> None:
    # A field value cannot contain a line break: CR and LF both end a line
    # in the event stream grammar ("end-of-line = ( cr lf / cr / lf )").
    if "\r" in value or "\n" in value:
        raise ValueError(f"SSE {name} must not contain CR or LF: {value!r}")


def encode_event(
    data: str,
    *,
    event_id: str | None = None,
    event: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """Encode one event, terminated by the blank line that dispatches it.

    ``data`` may span lines: each line becomes its own ``data:`` field, which
    the decoder joins back with LF. ``id`` and ``retry`` travel only with
    events that carry data, so strict decoders never see a data-less event.
    """
    lines: list[str] = []
    if event_id is not None:
        # Spec: an id containing NUL is ignored by the client, so never send one.
        if "\0" in event_id:
            raise ValueError("SSE id must not contain NUL")
        _check_single_line("id", event_id)
        lines.append(f"id: {event_id}")
    if event is not None:
        _check_single_line("event", event)
        lines.append(f"event: {event}")
    if retry_ms is not None:
        if retry_ms < 0:
            raise ValueError("SSE retry must be a non-negative integer")
        lines.append(f"retry: {int(retry_ms)}")
    # splitlines() would also split on U+2028 and friends, which are not SSE
    # line ends; normalise the three real ones to LF first.
    for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        lines.append(f"data: {line}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def format_trusted_event(data: str, event_id: str, retry_ms: int | None = None) -> str:
    """:func:`encode_event`'s output for a one-line ``data`` (as ``str``), without
    its checks: the hot path of the relays, for callers that guarantee
    ``data`` and ``event_id`` hold no CR, LF or NUL (protocol JSON and stream ids
    never do). The tests check that both give the same bytes."""
    retry = f"\nretry: {retry_ms}" if retry_ms is not None else ""
    return f"id: {event_id}{retry}\ndata: {data}\n\n"


def encode_retry(retry_ms: int) -> bytes:
    """A block with only a ``retry`` field: sets the client's reconnection delay
    and dispatches no event (WHATWG: a block without data is not an event).
    Sent before a draining server ends a response."""
    return f"retry: {int(retry_ms)}\n\n".encode()


def encode_comment(text: str = "") -> bytes:
    """Encode one comment line (starts with a colon); clients ignore it.

    Used for heartbeats: traffic that keeps proxies from timing the
    connection out without dispatching anything. Deliberately *no* blank line
    after it: decoders that keep the last event id (httpx-sse, the openai
    SDK) would dispatch an empty event at that blank line and fail to parse it.
    """
    _check_single_line("comment", text)
    return f": {text}\n".encode() if text else b":\n"


def format_trusted_data(data: str) -> str:
    """An event with only a one-line ``data`` field (``data`` holds no CR or LF)."""
    return f"data: {data}\n\n"


def format_events(
    stream_id: str, first_seq: int, texts: list[bytes], retry_ms: int | None = None
) -> bytes:
    """Events ``first_seq``, ``first_seq + 1``, ... of a stream, each ``data`` a
    one-line UTF-8 protocol JSON and each ``id`` ``STREAM:SEQ``, as one piece of
    the event stream (the relays' batch); byte-equal to :func:`encode_event`
    of each. ``retry_ms`` rides on the first."""
    sid = stream_id.encode()
    retry = b"\nretry: %d" % retry_ms if retry_ms is not None else b""
    if len(texts) == 1:
        return b"id: %b:%d%b\ndata: %b\n\n" % (sid, first_seq, retry, texts[0])
    parts = []
    for offset, text in enumerate(texts):
        parts.append(b"id: %b:%d%b\ndata: %b\n\n" % (sid, first_seq + offset, retry, text))
        retry = b""
    return b"".join(parts)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True if an ``Accept-Encoding`` header (RFC 9110 12.5.3) admits gzip:
    listed (or ``*``) without ``q=0``."""
    if not accept_encoding:
        return False
    allowed: dict[str, bool] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        if not name:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        allowed[name] = quality > 0
    if "gzip" in allowed:
        return allowed["gzip"]
    if "x-gzip" in allowed:
        return allowed["x-gzip"]
    return allowed.get("*", False)


class SyncFlushGzip:
    """A gzip body that can be read as it is written: every :meth:`compress`
    ends with a flush, so the bytes returned inflate to everything written so
    far and no event waits in the compressor for the next one. The flush is
    ``Z_PARTIAL_FLUSH``: it completes the deflate block and adds an empty fixed
    block (10 bits), where ``Z_SYNC_FLUSH`` adds an empty stored block (4-5
    bytes); either way an inflater (zlib, browsers) outputs everything before
    it. :meth:`finish` returns the gzip trailer."""

    __slots__ = ("_compressor",)

    def __init__(self, level: int = 6) -> None:
        # wbits 16 + 15: a gzip wrapper (RFC 1952) around a 32 KiB window.
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def compress(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_PARTIAL_FLUSH)

    def finish(self) -> bytes:
        return self._compressor.flush(zlib.Z_FINISH)
