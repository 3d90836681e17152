"""The pure SSE decoder against WHATWG event-stream vectors (no server, no I/O).

Every vector is fed whole, one byte at a time, in awkward chunk sizes, and
followed by an unterminated event (which must be dropped).
"""

from __future__ import annotations

import pytest

from clients.sse import EventDecoder, LineDecoder, ServerSentEvent, SSEDecoder, decode_all
from server.wire.sse import encode_comment, encode_event

E = ServerSentEvent

# (name, stream bytes, expected events)
VECTORS: list[tuple[str, bytes, list[ServerSentEvent]]] = [
    # --- the WHATWG HTML spec's own examples ("Server-sent events", 9.2.4-9.2.6) ---
    (
        "spec: stock ticker, multi-line data joined with LF",
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        [E("YHOO\n+2\n10")],
    ),
    (
        "spec: comment, id, id without value resets, one leading space stripped",
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n",
        [E("first event", id="1"), E("second event", id=""), E(" third event", id="")],
    ),
    (
        "spec: field without colon, empty data, last block not dispatched",
        b"data\n\ndata\ndata\n\ndata:",
        [E(""), E("\n")],
    ),
    ("spec: colon with and without space", b"data:test\n\ndata: test\n\n", [E("test"), E("test")]),
    (
        "spec: event types",
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
        [E("73857293", "add"), E("2153", "remove"), E("113411", "add")],
    ),
    # --- line ends ---
    ("LF", b"data: a\n\ndata: b\n\n", [E("a"), E("b")]),
    ("CR", b"data: a\r\rdata: b\r\r", [E("a"), E("b")]),
    ("CRLF", b"data: a\r\n\r\ndata: b\r\n\r\n", [E("a"), E("b")]),
    ("mixed line ends", b"data: a\rdata: b\r\ndata: c\n\r\n", [E("a\nb\nc")]),
    ("CR then LF is one line end, not a blank line", b"data: a\r\ndata: b\r\n\r\n", [E("a\nb")]),
    ("LF then CR is two line ends", b"data: a\n\rdata: b\n\n", [E("a"), E("b")]),
    # --- BOM ---
    ("leading BOM stripped", b"\xef\xbb\xbfdata: x\n\n", [E("x")]),
    ("only one BOM stripped", b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n", [E("y")]),
    ("BOM later is not stripped", b"data: a\n\n\xef\xbb\xbfdata: b\n\n", [E("a")]),
    # --- fields ---
    ("only one leading space stripped", b"data:   x  \n\n", [E("  x  ")]),
    ("no space after colon", b"data:x\n\n", [E("x")]),
    ("colon inside value kept", b"data: a: b:c\n\n", [E("a: b:c")]),
    ("field names are case-sensitive", b"Data: x\n\ndata: y\n\n", [E("y")]),
    ("unknown fields ignored", b"foo: bar\ndata: x\nbaz\n\n", [E("x")]),
    ("comments ignored, even between fields", b"data: a\n: hi\ndata: b\n:\n\n", [E("a\nb")]),
    ("lone comment lines dispatch nothing", b": heartbeat\n: heartbeat\n\n\n", []),
    ("trailing empty data line keeps an LF", b"data: a\ndata\n\n", [E("a\n")]),
    (
        "event type resets after dispatch",
        b"event: x\ndata: 1\n\ndata: 2\n\n",
        [E("1", "x"), E("2")],
    ),
    ("empty event field means message", b"event\ndata: 1\n\n", [E("1")]),
    ("event without data dispatches nothing", b"event: x\n\ndata: y\n\n", [E("y")]),
    # --- id ---
    (
        "last event id kept across events",
        b"id: 7\ndata: a\n\ndata: b\n\n",
        [E("a", id="7"), E("b", id="7")],
    ),
    (
        "id containing NUL ignored",
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        [E("a", id="1"), E("b", id="1")],
    ),
    ("id set in a block without data still counts", b"id: 5\n\ndata: x\n\n", [E("x", id="5")]),
    ("id is not trimmed beyond one space", b"id:  S:3 \ndata: x\n\n", [E("x", id=" S:3 ")]),
    # --- retry ---
    ("retry digits", b"retry: 1500\ndata: x\n\n", [E("x", retry=1500)]),
    ("retry non-digit ignored", b"retry: 15x\ndata: x\n\n", [E("x")]),
    ("retry negative ignored", b"retry: -1\ndata: x\n\n", [E("x")]),
    ("retry empty ignored", b"retry:\ndata: x\n\n", [E("x")]),
    ("retry with spaces ignored", b"retry: 1 0\ndata: x\n\n", [E("x")]),
    ("retry non-ASCII digits ignored", "retry: \u0661\u0662\ndata: x\n\n".encode(), [E("x")]),
    # --- dispatch ---
    ("no blank line, no event", b"data: a\ndata: b\n", []),
    ("unterminated last line dropped", b"data: a\n\ndata: b", [E("a")]),
    ("blank lines alone dispatch nothing", b"\n\n\r\n\r", []),
    # --- text ---
    ("UTF-8", "data: café über 🎉\n\n".encode(), [E("café über 🎉")]),
    ("invalid UTF-8 replaced", b"data: a\xffb\n\n", [E("a\ufffdb")]),
    ("JSON with escaped newline stays one line", b'data: {"c":"a\\nb"}\n\n', [E('{"c":"a\\nb"}')]),
    (
        "our server's framing",
        b'id: S:0\nretry: 1000\ndata: {"seq":0}\n\n: heartbeat\nid: S:1\ndata: {"seq":1}\n\n',
        [E('{"seq":0}', id="S:0", retry=1000), E('{"seq":1}', id="S:1")],
    ),
]

# none holds a blank line, so none can complete an event
TRAILERS = [b"data: unterminated", b"data: half\n", b"id: 99\ndata: x\r", b"\xef\xbb"]


def feed(decoder: SSEDecoder, data: bytes, size: int) -> list[ServerSentEvent]:
    events: list[ServerSentEvent] = []
    for start in range(0, len(data), size):
        events.extend(decoder.feed(data[start : start + size]))
    return events


@pytest.mark.parametrize("name, data, expected", VECTORS, ids=[v[0] for v in VECTORS])
@pytest.mark.parametrize("chunk_size", [None, 1, 2, 3, 7])
def test_vector(name: str, data: bytes, expected: list[ServerSentEvent], chunk_size: int | None):
    assert decode_all(data, chunk_size) == expected


@pytest.mark.parametrize("name, data, expected", VECTORS, ids=[v[0] for v in VECTORS])
@pytest.mark.parametrize("trailer", TRAILERS)
def test_vector_with_trailing_data(
    name: str, data: bytes, expected: list[ServerSentEvent], trailer: bytes
):
    """Whatever follows without a closing blank line is never dispatched."""
    for size in (None, 1, 5):
        assert decode_all(data + trailer, size) == expected


def test_crlf_split_across_chunks_counts_once():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r") == [E("a\nb")]  # the blank line is the lone CR
    assert decoder.feed(b"\n") == []  # ... and this LF completes its CRLF
    assert decoder.feed(b"data: c\n\n") == [E("c")]


def test_cr_line_end_dispatches_without_waiting_for_more():
    """A CR at the end of a chunk ends the line at once (no wait for an LF)."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: now\r\r") == [E("now")]


def test_bom_split_across_chunks_is_stripped():
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef") == []
    assert decoder.feed(b"\xbb") == []
    assert decoder.feed(b"\xbfdata: x\n\n") == [E("x")]


def test_last_event_id_and_retry_survive_dispatch():
    decoder = SSEDecoder()
    decoder.feed(b"id: S:1\nretry: 250\ndata: a\n\ndata: b\n\n")
    assert decoder.last_event_id == "S:1"
    assert decoder.retry == 250
    decoder.feed(b"retry: soon\nid: bad\x00\ndata: c\n\n")
    assert (decoder.last_event_id, decoder.retry) == ("S:1", 250)


def test_incomplete_reports_half_received_event():
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n: heartbeat\n")
    assert not decoder.incomplete  # a comment is not an event
    decoder.feed(b"data: b\n")
    assert decoder.incomplete
    decoder.feed(b"\n")
    assert not decoder.incomplete
    decoder.feed(b"da")
    assert decoder.incomplete and decoder.pending_line_length == 2


def test_line_decoder_stage():
    lines = LineDecoder()
    assert lines.feed("a\rb\r") == ["a", "b"]
    assert lines.feed("\nc") == []
    assert lines.feed("\r\n\n") == ["c", ""]
    assert lines.pending_length == 0


def test_event_decoder_stage():
    events = EventDecoder()
    assert events.feed_line("data: x") is None
    assert events.feed_line("id: 3") is None
    assert events.feed_line("") == E("x", id="3")
    assert events.feed_line("") is None


@pytest.mark.parametrize(
    "data",
    ["plain", "", "two\nlines", "cr\rand crlf\r\nend", "  spaces  ", "\n", "ünï\u2028code"],
)
def test_round_trip_with_server_encoder(data: str):
    """Whatever ``server.wire.sse`` encodes, this decoder gets back (line ends as LF)."""
    wire = encode_comment("hi") + encode_event(data, event_id="S:4", retry_ms=10) + encode_comment()
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    for size in (None, 1):
        assert decode_all(wire, size) == [E(expected, id="S:4", retry=10)]


def test_decoder_module_is_pure():
    """clients/sse.py imports no I/O, no asyncio, no tornado: only text tools."""
    import ast

    import clients.sse

    assert clients.sse.__file__ is not None
    with open(clients.sse.__file__, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported == {"__future__", "codecs", "dataclasses"}
