"""Server text frames (RFC 6455 5.2), checked against vectors and against the
``websockets`` library's own frame parser, fed whole, byte by byte and with data after."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.wire.websocket import text_frame


def parse_with_websockets(data: bytes, chunk: int) -> tuple[Frame, bytes]:
    """Parse one frame as a client does (it expects unmasked server frames),
    feeding ``data`` ``chunk`` bytes at a time; return it and what was left."""
    reader = StreamReader()
    parser = Frame.parse(reader.read_exact, mask=False, extensions=None)
    for start in range(0, len(data), chunk):
        reader.feed_data(data[start : start + chunk])
        try:
            next(parser)
        except StopIteration as done:
            rest = data[start + chunk :]
            leftover = bytes(reader.buffer) + rest
            return done.value, leftover
    raise AssertionError("frame incomplete")


@pytest.mark.parametrize(
    "length, header",
    [
        (0, b"\x81\x00"),
        (5, b"\x81\x05"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),  # the 16-bit length from 126 on
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),  # the 64-bit length
    ],
)
def test_text_frames_use_the_shortest_length_encoding(length: int, header: bytes) -> None:
    payload = b"x" * length
    assert text_frame(payload) == header + payload


def test_a_compressed_payload_sets_rsv1() -> None:
    assert text_frame(b"abc", compressed=True) == b"\xc1\x03abc"


@pytest.mark.parametrize("length", [0, 1, 125, 126, 300, 65535, 65536])
@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_websockets_reads_each_frame_back_whole_and_leaves_what_follows(
    length: int, chunk: int
) -> None:
    payload = ('{"t":"é"}' * (length // 10 + 1)).encode()[:length]
    if chunk == 1 and length > 300:
        chunk = 97  # byte by byte over 64 KiB is slow and proves nothing more
    trailing = b"\x81\x02hi"
    frame, left = parse_with_websockets(text_frame(payload) + trailing, chunk)
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)
    assert frame.data == payload
    assert left == trailing
