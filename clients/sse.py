"""Server-Sent Events decoder: bytes in, events out. Pure code, no I/O.

Follows the WHATWG HTML "Server-sent events" section, "Parsing an event
stream" and "Interpreting an event stream", in two stages:

* :class:`LineDecoder` turns text chunks into lines, ending a line at LF, CR
  or CRLF (a CRLF split across two chunks counts once);
* :class:`EventDecoder` turns lines into events, dispatching only at a blank
  line.

:class:`SSEDecoder` chains both behind a UTF-8 decoder that strips one leading
BOM and replaces invalid bytes, which is what a browser's ``EventSource`` does.
The encoder side lives in :mod:`server.wire.sse`.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["ServerSentEvent", "LineDecoder", "EventDecoder", "SSEDecoder", "decode_all"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event.

    ``id`` is the stream's last event id *at dispatch*, which persists across
    events until an ``id`` field changes it (spec: the ``lastEventId``).
    ``retry`` is the reconnection time in milliseconds if this event's block
    set one, else ``None``.
    """

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class LineDecoder:
    """Split text into lines at LF, CR or CRLF, across any chunking.

    A line ending in CR is emitted at once (CR ends a line on its own); an LF
    that starts the next chunk is then recognised as the rest of a CRLF and
    skipped. Text after the last line end waits for more input.
    """

    def __init__(self) -> None:
        self._partial: list[str] = []
        self._partial_length = 0
        self._skip_lf = False

    def feed(self, text: str) -> list[str]:
        lines: list[str] = []
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        start = 0
        length = len(text)
        while start < length:
            cr = text.find("\r", start)
            lf = text.find("\n", start)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, after = lf, lf + 1
            elif cr + 1 < length:
                end, after = cr, cr + 2 if text[cr + 1] == "\n" else cr + 1
            else:  # CR at the very end of the chunk: an LF may follow in the next one
                end, after = cr, cr + 1
                self._skip_lf = True
            self._partial.append(text[start:end])
            lines.append("".join(self._partial))
            self._partial = []
            self._partial_length = 0
            start = after
        if start < length:
            self._partial.append(text[start:])
            self._partial_length += length - start
        return lines

    @property
    def pending_length(self) -> int:
        """Characters received after the last line end (an incomplete line)."""
        return self._partial_length


class EventDecoder:
    """Interpret lines as the spec says; :meth:`feed_line` returns an event at
    a blank line that ends a block with data, else ``None``.

    ``last_event_id`` and ``retry`` (milliseconds, or ``None`` if never set)
    hold the stream-wide state a reconnecting client needs.
    """

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry: int | None = None
        self._data: list[str] = []
        self._event_type = ""
        self._block_retry: int | None = None
        self._in_block = False

    @property
    def in_event(self) -> bool:
        """True if fields (not comments) arrived since the last blank line:
        an event is half-received."""
        return self._in_block

    def feed_line(self, line: str) -> ServerSentEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment (e.g. a heartbeat): not part of any event
        self._in_block = True
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event_type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value and value.isascii() and value.isdigit():
                self.retry = self._block_retry = int(value)
        # any other field name is ignored
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        # The last event id buffer is never reset here: it carries over.
        data, event_type, retry = self._data, self._event_type, self._block_retry
        self._data, self._event_type, self._block_retry = [], "", None
        self._in_block = False
        if not data:
            return None
        return ServerSentEvent(
            data="\n".join(data),
            event=event_type or "message",
            id=self.last_event_id,
            retry=retry,
        )


class SSEDecoder:
    """Bytes to events: UTF-8 (one leading BOM stripped, bad bytes replaced),
    then lines, then events.

    Call :meth:`feed` with each network chunk; at end of stream, an event
    without its closing blank line is dropped, as the spec requires:
    :attr:`incomplete` tells whether that happened.
    """

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._lines = LineDecoder()
        self._events = EventDecoder()

    @property
    def last_event_id(self) -> str:
        return self._events.last_event_id

    @property
    def retry(self) -> int | None:
        """The latest reconnection time the stream asked for, in milliseconds."""
        return self._events.retry

    @property
    def incomplete(self) -> bool:
        """True if part of an event (or of a line) has arrived without its end."""
        return self._events.in_event or self._lines.pending_length > 0

    @property
    def pending_line_length(self) -> int:
        """Length of the incomplete line buffered so far (to bound memory)."""
        return self._lines.pending_length

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        for line in self._lines.feed(self._text.decode(chunk)):
            event = self._events.feed_line(line)
            if event is not None:
                events.append(event)
        return events


def decode_all(data: bytes | str, chunk_size: int | None = None) -> list[ServerSentEvent]:
    """Decode a whole stream (in chunks of ``chunk_size`` bytes, if given)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    decoder = SSEDecoder()
    step = chunk_size or max(len(raw), 1)
    events: list[ServerSentEvent] = []
    for start in range(0, len(raw), step):
        events.extend(decoder.feed(raw[start : start + step]))
    return events
