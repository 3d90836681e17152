"""Pure tests of the SSE encoder, decoded by an independent implementation (httpx-sse)."""

from __future__ import annotations

import pytest
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from server.wire.sse import encode_comment, encode_event, format_trusted_event


def decode(raw: bytes, chunk: int | None = None) -> list[tuple[str, str, str, int | None]]:
    """Decode with httpx-sse, fed whole or ``chunk`` bytes at a time."""
    lines, events = SSELineDecoder(), SSEDecoder()
    text = raw.decode("utf-8")
    pieces = [text] if chunk is None else [text[i : i + chunk] for i in range(0, len(text), chunk)]
    out = []
    for piece in pieces:
        for line in lines.decode(piece):
            event = events.decode(line)
            if event is not None:
                out.append((event.event, event.data, event.id, event.retry))
    return out


def test_event_layout() -> None:
    assert encode_event("x", event_id="S:1", retry_ms=1000) == b"id: S:1\nretry: 1000\ndata: x\n\n"
    assert encode_event("x", event="delta") == b"event: delta\ndata: x\n\n"


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_independent_decoder_reads_what_we_encode(chunk: int | None) -> None:
    raw = (
        encode_event('{"a":1}', event_id="S:0", retry_ms=1500)
        + encode_comment("heartbeat")
        + encode_event("two\nlines\r\nand\rthree", event_id="S:1")
        + encode_comment()
        + encode_event("ünïcode ☃", event="note")
    )
    assert decode(raw, chunk) == [
        ("message", '{"a":1}', "S:0", 1500),
        ("message", "two\nlines\nand\nthree", "S:1", None),
        ("note", "ünïcode ☃", "S:1", None),  # the last event id carries over
    ]


def test_comments_dispatch_nothing() -> None:
    assert decode(encode_comment("ping") + encode_comment()) == []
    assert encode_comment("ping") == b": ping\n"
    assert encode_comment() == b":\n"


@pytest.mark.parametrize(
    "kwargs", [{"event_id": "a\nb"}, {"event_id": "a\0b"}, {"event": "x\ry"}, {"retry_ms": -1}]
)
def test_unencodable_fields_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        encode_event("x", **kwargs)  # type: ignore[arg-type]


def test_comment_with_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_comment("a\nb")


@pytest.mark.parametrize("retry_ms", [None, 0, 1500])
@pytest.mark.parametrize("data", ['{"type":"delta","content":"é ☃"}', "", "plain"])
def test_trusted_fast_path_gives_the_same_bytes(data: str, retry_ms: int | None) -> None:
    event_id = "AbCdEfGh12345678_-xyz:42"
    fast = format_trusted_event(data, event_id, retry_ms).encode("utf-8")
    assert fast == encode_event(data, event_id=event_id, retry_ms=retry_ms)


def test_format_events_is_byte_equal_to_encode_event_per_event() -> None:
    from server.wire.sse import encode_event, format_events

    texts = [b'{"type":"start","seq":0}', '{"content":"caf\u00e9"}'.encode(), b"{}"]
    expected = encode_event(texts[0].decode(), event_id="S:4", retry_ms=1000) + b"".join(
        encode_event(text.decode(), event_id=f"S:{4 + i}") for i, text in enumerate(texts) if i
    )
    assert format_events("S", 4, texts, retry_ms=1000) == expected
    assert format_events("S", 9, texts[1:2]) == encode_event(texts[1].decode(), event_id="S:9")


def test_retry_block_sets_the_delay_and_dispatches_nothing() -> None:
    """The drain's last bytes: a block with only ``retry`` (whole and byte by byte)."""
    from clients.sse import SSEDecoder as OurDecoder
    from server.wire.sse import encode_retry

    data = encode_retry(734)
    assert data == b"retry: 734\n\n"
    event = format_trusted_event('{"seq":3}', "S:3").encode()
    for chunk_size in (None, 1):
        decoder = OurDecoder()
        whole = event + data
        step = chunk_size or len(whole)
        events = []
        for start in range(0, len(whole), step):
            events += decoder.feed(whole[start : start + step])
        assert [e.data for e in events] == ['{"seq":3}']
        assert decoder.retry == 734 and decoder.last_event_id == "S:3"
        assert not decoder.incomplete
