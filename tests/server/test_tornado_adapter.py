"""The private Tornado attributes server/tornado_adapter.py relies on: this
fails loudly if an upgrade of Tornado removes or renames one of them."""

from __future__ import annotations

import asyncio
import inspect
import socket
import struct
import sys
import zlib

import tornado.httpclient
import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.iostream
import tornado.testing
import tornado.web
import tornado.websocket

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
    transport = tornado_adapter.IOStreamTransport(stream)
    try:
        payload = bytes(range(256)) * 4096  # 1 MiB: more than the kernel takes at once
        transport.send(payload[:1000])  # straight to the socket
        assert transport.pending() == 0
        transport.send(payload[1000:])
        queued = transport.pending()
        assert 0 < queued < len(payload)
        # while bytes are queued, a small write must wait behind them, not jump ahead
        # (IOStream.write tries the socket at once: the kernel may take some)
        assert 0 < transport.send(b"tail") <= queued + 4
        payload += b"tail"
        taken_before = transport.taken()
        received = bytearray()
        right.setblocking(False)
        loop = asyncio.get_running_loop()
        while len(received) < len(payload):
            received += await loop.sock_recv(right, 65536)
        assert bytes(received) == payload  # nothing reordered, nothing lost
        assert transport.pending() == 0
        assert transport.taken() > taken_before
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


def test_trim_headers_keeps_only_the_named_ones_and_frees_the_tables() -> None:
    headers = tornado.httputil.HTTPHeaders()
    for index in range(20):
        headers.add(f"X-Header-{index}", "value")
    headers.add("Connection", "keep-alive")
    headers.add("Set-Cookie", "a=1")
    headers.add("Set-Cookie", "b=2")
    before = sys.getsizeof(headers._as_list)
    tornado_adapter.trim_headers(headers, ("Connection", "Set-Cookie"))
    assert list(headers.get_all()) == [
        ("Connection", "keep-alive"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert headers["Set-Cookie"] == "a=1,b=2"  # the combined view is rebuilt too
    assert sys.getsizeof(headers._as_list) < before  # cleared, not just emptied
    tornado_adapter.trim_headers(headers)
    assert list(headers.get_all()) == []


async def test_a_response_keeps_its_headers_until_they_are_sent() -> None:
    class Handler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("X-Before", "1")
            tornado_adapter.forget_response_headers(self)  # not sent yet: kept
            seen.append(self._headers.get("X-Before"))
            self.flush()
            tornado_adapter.forget_response_headers(self)
            seen.append(len(list(self._headers.get_all())))
            tornado_adapter.keep_response_open(self)  # returns without finishing...
            tornado.ioloop.IOLoop.current().call_later(0.05, self.finish, "done")

    seen: list[object] = []
    sock, _ = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(tornado.web.Application([("/", Handler)]))
    server.add_sockets([sock])
    port = sock.getsockname()[1]
    client = tornado.httpclient.AsyncHTTPClient()
    try:
        response = await client.fetch(f"http://127.0.0.1:{port}/")
        assert response.headers["X-Before"] == "1"
        assert response.body == b"done"  # ...and the later finish() ends it
        assert seen == ["1", 0]
    finally:
        client.close()
        server.stop()
        await server.close_all_connections()


def test_the_shared_proxy_set_replaces_only_a_connection_s_own() -> None:
    left, right = socket.socketpair()
    stream = tornado.iostream.IOStream(left)
    try:
        context = tornado.httpserver._HTTPRequestContext(
            stream, ("127.0.0.1", 1), None, ["10.0.0.1"]
        )
        assert context.trusted_downstream == {"10.0.0.1"}  # Tornado's own, per connection
        shared = frozenset({"10.0.0.1"})
        tornado_adapter.share_trusted_downstream(context, shared)
        assert context.trusted_downstream is shared
        tornado_adapter.share_trusted_downstream(None, shared)  # another connection type
    finally:
        stream.close()
        right.close()


def test_forwarded_headers_are_undone_for_an_untrusted_peer() -> None:
    stream = tornado.iostream.IOStream(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    try:
        context = tornado.httpserver._HTTPRequestContext(stream, ("198.51.100.7", 1), None)
        forwarded = tornado.httputil.HTTPHeaders(
            {"X-Forwarded-For": "192.0.2.1", "X-Forwarded-Proto": "https"}
        )
        context._apply_xheaders(forwarded)  # what Tornado's xheaders=True does
        assert (context.remote_ip, context.protocol) == ("192.0.2.1", "https")
        tornado_adapter.unapply_xheaders(context)
        assert (context.remote_ip, context.protocol) == ("198.51.100.7", "http")
        tornado_adapter.unapply_xheaders(None)  # another context type: nothing happens
    finally:
        stream.close()


def test_the_header_parser_wrapper_comes_off() -> None:
    class Connection:
        def _parse_headers(self, data: bytes) -> str:
            return "original"

    connection = Connection()
    tornado_adapter.wrap_header_parser(connection, lambda original: lambda data: "wrapped")
    assert connection._parse_headers(b"") == "wrapped"
    tornado_adapter.unwrap_header_parser(connection)
    assert connection._parse_headers(b"") == "original"


def test_lean_websocket_handlers_get_no_per_instance_method_guards() -> None:
    # Tornado's _detach_stream sets these on the instance; the lean one does not.
    assert "_detach_stream" in vars(tornado_adapter.LeanWebSocketHandler)
    source = inspect.getsource(tornado.websocket.WebSocketHandler._detach_stream)
    assert "setattr" in source and "self.detach()" in source
