"""benchmarks.rawwire: the raw HTTP/1.1 and WebSocket codec, with vectors -- each fed
whole, byte by byte (every prefix a reader could hold) and with data after it."""

from __future__ import annotations

import json
import struct

import pytest

from benchmarks.rawwire import (
    HEAD_END,
    has_status,
    head_end,
    holds_an_event,
    http_request,
    parse_chunk_size,
    parse_http_responses,
    parse_response_head,
    parse_ws_frames,
    response_status,
    status_line,
    ws_frame,
    ws_upgrade_request,
)

# -- requests ---------------------------------------------------------------------------


def test_requests_are_the_bytes_the_clients_sent_by_hand() -> None:
    assert http_request(
        "GET", "/sse?prompt=a&max_tokens=8", "127.0.0.1", 8000, [("Accept", "text/event-stream")]
    ) == (
        b"GET /sse?prompt=a&max_tokens=8 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
        b"Accept: text/event-stream\r\n\r\n"
    )
    assert ws_upgrade_request("127.0.0.1", 8000, "dHdpbnN0cmVhbS1zdHVjayE=") == (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dHdpbnN0cmVhbS1zdHVjayE=\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert http_request("POST", "/x", "h", 1) == b"POST /x HTTP/1.1\r\nHost: h:1\r\n\r\n"


# -- response heads -----------------------------------------------------------------------

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Transfer-Encoding: Chunked\r\nX-Odd:  spaced value \r\nConnection: close\r\n\r\n"
)


def test_a_head_whole_with_or_without_its_blank_line() -> None:
    for head in (HEAD, HEAD[: -len(HEAD_END)]):
        parsed = parse_response_head(head)
        assert (parsed.status_line, parsed.status) == ("HTTP/1.1 200 OK", 200)
        assert parsed.headers == {
            "content-type": "text/event-stream",
            "transfer-encoding": "Chunked",
            "x-odd": "spaced value",
            "connection": "close",
        }
        assert parsed.chunked and not parsed.keep_alive
    plain = parse_response_head(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert plain.headers == {} and not plain.chunked and plain.keep_alive


def test_a_head_fed_byte_by_byte_ends_once_and_where_it_should() -> None:
    data = HEAD + b"5\r\nhello\r\n"  # the body follows the head
    for cut in range(len(data) + 1):
        end = head_end(data[:cut])
        assert end == (len(HEAD) if cut >= len(HEAD) else -1)
    assert head_end(data, 3) == len(HEAD)
    assert head_end(HEAD + HEAD, len(HEAD)) == 2 * len(HEAD)


def test_status_helpers() -> None:
    assert status_line(HEAD) == "HTTP/1.1 200 OK"
    assert has_status(HEAD, 200) and not has_status(HEAD, 101)
    assert has_status(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 101)
    assert not has_status(b"HTTP/1.0 200 OK\r\n\r\n", 200)
    assert response_status(b"HTTP/1.1 404 Not Found\r\nX: y\r\n\r\nbody") == 404
    assert response_status(b"") == response_status(b"garbage") == 0
    with pytest.raises(IndexError):
        parse_response_head(b"garbage\r\n\r\n")
    with pytest.raises(ValueError):
        parse_response_head(b"HTTP/1.1 OK\r\n\r\n")


def test_chunk_sizes_and_event_ends() -> None:
    assert parse_chunk_size(b"1a") == 26
    assert parse_chunk_size(b"1A;name=value") == 26
    assert parse_chunk_size(b"0") == parse_chunk_size(b"") == 0
    assert parse_chunk_size(b"ff\r\n") == 255  # a size line read with its CRLF
    with pytest.raises(ValueError):
        parse_chunk_size(b"\r\n")
    assert holds_an_event(b"data: a\n\n") and holds_an_event(b"data: a\r\n\r\n")
    assert not holds_an_event(b"data: a\n") and not holds_an_event(b"")


# -- pipelined HTTP responses -----------------------------------------------------------


def chunked(status: int, *chunks: bytes, end: bool = True) -> bytes:
    head = f"HTTP/1.1 {status} OK\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    body = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks)
    return head + body + (b"0\r\n\r\n" if end else b"")


def test_pipelined_responses_split_and_the_last_cut_short() -> None:
    first = chunked(200, b"id: s:1\ndata: a\n\n", b"id: s:2\ndata: b\n\n")
    second = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    third = chunked(200, b"id: s:1\ndata: a\n\n", b"id: s:2\nda", end=False)
    responses = parse_http_responses(first + second + third)
    assert [(r.status, r.complete) for r in responses] == [(200, True), (204, True), (200, False)]
    assert responses[0].body == b"id: s:1\ndata: a\n\nid: s:2\ndata: b\n\n"
    assert responses[2].body == b"id: s:1\ndata: a\n\nid: s:2\nda"


def test_pipelined_responses_parse_at_every_cut() -> None:
    data = chunked(200, b"data: one\n\n", b"data: two\n\n") * 3
    for cut in range(len(data) + 1):
        responses = parse_http_responses(data[:cut])
        assert all(r.complete for r in responses[:-1])
        assert all(r.status == 200 for r in responses)
        for response in responses:
            assert b"data: one\n\ndata: two\n\n".startswith(response.body)


def test_content_length_responses_whole_byte_by_byte_and_with_data_after() -> None:
    one = b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!"
    two = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    whole = parse_http_responses(one + two)
    assert [(r.status, r.body, r.complete) for r in whole] == [
        (404, b"nope!", True),
        (200, b"ok", True),
    ]
    for cut in range(len(one) + 1):
        responses = parse_http_responses(one[:cut])
        if cut < one.index(b"nope!"):
            assert responses == []
        else:
            (response,) = responses
            assert response.body == one[one.index(b"nope!") : cut]
            assert response.complete == (cut == len(one))
    # a following response's head not whole yet: only the first
    for extra in (b"H", b"HTTP/1.1 200 OK\r\n", two[: -len(HEAD_END) - 2]):
        assert [r.body for r in parse_http_responses(one + extra)] == [b"nope!"]


def test_a_chunked_response_byte_by_byte_ends_exactly_at_its_last_chunk() -> None:
    data = chunked(200, b"abc", b"0123456789abcdef0123")
    body_at = data.index(HEAD_END) + len(HEAD_END)
    for cut in range(len(data) + 1):
        responses = parse_http_responses(data[:cut])
        if cut < body_at:
            assert responses == []
            continue
        (response,) = responses
        assert response.complete == (cut == len(data))
        assert b"abc0123456789abcdef0123".startswith(response.body)
    # what follows the last chunk's CRLF is the next response, never this body
    (first, second) = parse_http_responses(data + b"HTTP/1.1 204 X\r\n\r\n")
    assert first.body == b"abc0123456789abcdef0123" and first.complete
    assert (second.status, second.body, second.complete) == (204, b"", True)


# -- WebSocket frames ------------------------------------------------------------------


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked frame, as servers send them (RFC 6455 5.1)."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return struct.pack("!BB", first, len(payload)) + payload
    if len(payload) < 1 << 16:
        return struct.pack("!BBH", first, 126, len(payload)) + payload
    return struct.pack("!BBQ", first, 127, len(payload)) + payload


def test_ws_frames_small_medium_large_fragmented_and_close() -> None:
    medium, large = "m" * 300, "L" * 70_000
    data = (
        server_frame(0x1, b'{"a":1}')
        + server_frame(0x1, medium.encode())
        + server_frame(0x1, large.encode())
        + server_frame(0x1, b"frag", fin=False)
        + server_frame(0x9, b"ping")  # a control frame between fragments (5.4)
        + server_frame(0x0, b"mented")
        + server_frame(0x8, struct.pack("!H", 4008) + b"slow consumer")
        + b"after the close frame"
    )
    frames = parse_ws_frames(data)
    assert frames.messages == ['{"a":1}', medium, large, "fragmented"]
    assert (frames.close_code, frames.close_reason) == (4008, "slow consumer")


def test_ws_frames_cut_anywhere_keep_the_whole_ones() -> None:
    whole = [json.dumps({"seq": i, "content": "x" * (i * 40)}) for i in range(6)]
    data = b"".join(server_frame(0x1, m.encode()) for m in whole)
    for cut in range(len(data) + 1):
        frames = parse_ws_frames(data[:cut])
        assert frames.messages == whole[: len(frames.messages)]
        assert frames.close_code is None
        assert frames.trailing == cut - len(
            b"".join(server_frame(0x1, m.encode()) for m in frames.messages)
        )


def test_ws_close_frame_byte_by_byte_and_without_a_code() -> None:
    close = server_frame(0x8, struct.pack("!H", 1000) + b"bye")
    for cut in range(len(close)):
        frames = parse_ws_frames(close[:cut])
        assert frames.close_code is None and frames.trailing == cut
    frames = parse_ws_frames(close + b"\x81\x05trail")
    assert (frames.close_code, frames.close_reason, frames.messages) == (1000, "bye", [])
    empty = parse_ws_frames(server_frame(0x8, b""))
    assert empty.close_code is None and empty.close_reason is None


def test_client_frames_are_masked_and_round_trip() -> None:
    for size in (0, 5, 125, 126, 65535, 65536):
        payload = (b"twinstream" * (size // 10 + 1))[:size]
        frame = ws_frame(0x1, payload, b"\x01\x02\x03\x04")
        assert frame[0] == 0x81 and frame[1] & 0x80  # final text frame, masked
        assert payload not in frame or size == 0  # the payload is not sent in the clear
        assert parse_ws_frames(frame).messages == [payload.decode()]
    assert ws_frame(0xA, b"", b"\x00\x00\x00\x00") == b"\x8a\x80\x00\x00\x00\x00"
    assert ws_frame(0x9, b"k", b"\xff\x00\x00\x00") == b"\x89\x81\xff\x00\x00\x00" + bytes(
        [ord("k") ^ 0xFF]
    )
