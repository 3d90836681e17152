"""The private Tornado attributes server/tornado_adapter.py relies on: this
fails loudly if an upgrade of Tornado removes or renames one of them."""

from __future__ import annotations

import asyncio
import socket
import struct
import zlib

import tornado.iostream

from server import tornado_adapter


def test_every_private_attribute_used_still_exists() -> None:
    assert tornado_adapter.missing() == []


def test_chunk_is_rfc9112_chunked_coding() -> None:
    assert tornado_adapter.chunk(b"hello") == b"5\r\nhello\r\n"
    assert tornado_adapter.chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"


async def test_send_writes_in_order_and_counts_what_is_queued() -> None:
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    stream = tornado.iostream.IOStream(left)
    try:
        payload = bytes(range(256)) * 4096  # 1 MiB: more than the kernel takes at once
        tornado_adapter.send(stream, payload[:1000])  # straight to the socket
        assert tornado_adapter.pending_bytes(stream) == 0
        tornado_adapter.send(stream, payload[1000:])
        queued = tornado_adapter.pending_bytes(stream)
        assert 0 < queued < len(payload)
        taken_before = tornado_adapter.bytes_taken(stream)
        received = bytearray()
        right.setblocking(False)
        loop = asyncio.get_running_loop()
        while len(received) < len(payload):
            received += await loop.sock_recv(right, 65536)
        assert bytes(received) == payload  # nothing reordered, nothing lost
        assert tornado_adapter.pending_bytes(stream) == 0
        assert tornado_adapter.bytes_taken(stream) > taken_before
    finally:
        stream.close()
        right.close()


def test_websocket_frames_match_rfc6455_lengths() -> None:
    class FakeProtocol:  # only the two counters and the compressor are read
        _message_bytes_out = 0
        _wire_bytes_out = 0
        _compressor = None

    connection = FakeProtocol()
    for size, header in ((10, 2), (200, 4), (70_000, 10)):
        payload = ("é" * (size // 2)).encode()
        frame = tornado_adapter.websocket_frame(connection, payload)  # type: ignore[arg-type]
        assert frame[0] == 0x81  # FIN + text
        assert frame[header:] == payload
        if header == 2:
            assert frame[1] == len(payload)
        elif header == 4:
            assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == len(payload)
        else:
            assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == len(payload)


def test_compressed_frames_set_rsv1_and_inflate() -> None:
    from tornado.websocket import _PerMessageDeflateCompressor

    class FakeProtocol:
        _message_bytes_out = 0
        _wire_bytes_out = 0
        _compressor = _PerMessageDeflateCompressor(False, None, None)

    frame = tornado_adapter.websocket_frame(FakeProtocol(), b'{"type":"delta"}')  # type: ignore[arg-type]
    assert frame[0] == 0x81 | 0x40
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    assert inflate.decompress(frame[2:] + b"\x00\x00\xff\xff") == b'{"type":"delta"}'


def test_the_check_would_notice_a_missing_attribute() -> None:
    assert not tornado_adapter._has_instance_attribute(
        tornado.iostream.IOStream, "_no_such_attribute"
    )
