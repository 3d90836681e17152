"""Server-Sent Events encoder: pure functions from fields to bytes, no I/O.

Follows the WHATWG HTML "Server-sent events" section (event stream format).
The matching decoder lives in :mod:`clients.sse`.
"""

from __future__ import annotations

__all__ = ["encode_event", "encode_comment", "format_trusted_event"]


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


def encode_comment(text: str = "") -> bytes:
    """Encode one comment line (starts with a colon); clients ignore it.

    Used for heartbeats: traffic that keeps proxies from timing the
    connection out without dispatching anything. Deliberately *no* blank line
    after it: decoders that keep the last event id (httpx-sse, the openai
    SDK) would dispatch an empty event at that blank line and fail to parse it.
    """
    _check_single_line("comment", text)
    return f": {text}\n".encode() if text else b":\n"
