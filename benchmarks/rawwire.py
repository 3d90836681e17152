"""The raw HTTP/1.1 and WebSocket codec of the benchmarks' hand-written clients.

Pure: bytes in, parsed values out (and requests or frames out); no sockets, no
event loop. The socket I/O around it stays with the parts that use it.

* requests: :func:`http_request`, :func:`ws_upgrade_request`;
* response heads: :func:`head_end`, :func:`parse_response_head`, :func:`status_line`,
  :func:`has_status`, :func:`response_status`;
* bodies: :func:`parse_chunk_size`, :func:`parse_http_responses` (pipelined responses),
  :func:`holds_an_event` (an SSE body has a whole event);
* WebSocket frames (RFC 6455 5.2): :func:`ws_frame` (client, masked) and
  :func:`parse_ws_frames` (server frames).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "HEAD_END",
    "ResponseHead",
    "HTTPResponse",
    "WSFrames",
    "http_request",
    "ws_upgrade_request",
    "head_end",
    "parse_response_head",
    "status_line",
    "has_status",
    "response_status",
    "parse_chunk_size",
    "parse_http_responses",
    "holds_an_event",
    "ws_frame",
    "parse_ws_frames",
]

#: the blank line that ends an HTTP head
HEAD_END = b"\r\n\r\n"


# -- requests ---------------------------------------------------------------------------


def http_request(
    method: str, path: str, host: str, port: int, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """An HTTP/1.1 request head: request line, ``Host``, then ``headers`` in order."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def ws_upgrade_request(host: str, port: int, key: str, path: str = "/ws") -> bytes:
    """A WebSocket opening handshake (RFC 6455 4.1), ``key`` being 16 bytes in base64."""
    return http_request(
        "GET",
        path,
        host,
        port,
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
        ],
    )


# -- response heads -----------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseHead:
    """A response's status line, status code and headers (names lower-cased)."""

    status_line: str
    status: int
    headers: dict[str, str]

    @property
    def chunked(self) -> bool:
        return self.headers.get("transfer-encoding", "").lower() == "chunked"

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


def head_end(data: bytes, start: int = 0) -> int:
    """Where the head starting at ``start`` ends (just past its blank line), or -1."""
    end = data.find(HEAD_END, start)
    return end + len(HEAD_END) if end >= 0 else -1


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head, with or without its closing blank line; lines without a
    colon are skipped. Raises ValueError or IndexError for a malformed status line."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return ResponseHead(status_line, status, headers)


def status_line(head: bytes) -> str:
    """A response's first line."""
    return head.split(b"\r\n", 1)[0].decode("latin-1")


def has_status(head: bytes, status: int) -> bool:
    """Whether ``head`` starts an HTTP/1.1 response with ``status``."""
    return head.startswith(b"HTTP/1.1 %d" % status)


def response_status(response: bytes) -> int:
    """The status code of a response's first line, 0 when it has none."""
    parts = response.partition(b"\r\n")[0].split()
    return int(parts[1]) if len(parts) > 1 else 0


# -- bodies -----------------------------------------------------------------------------


def parse_chunk_size(line: bytes) -> int:
    """A chunk's size from its size line (extensions ignored; an empty line is 0)."""
    return int(line.split(b";")[0] or b"0", 16)


def holds_an_event(body: bytes) -> bool:
    """Whether an SSE body holds the blank line ending an event (LF or CRLF lines)."""
    return b"\n\n" in body or b"\r\n\r\n" in body


@dataclass
class HTTPResponse:
    """One response of a pipelined run: status, body (de-chunked), whether it ended."""

    status: int
    body: bytes
    complete: bool


def _chunked_body(data: bytes, position: int) -> tuple[bytes, bool, int]:
    """A chunked body from ``position``: (body so far, whether it ended, where it stops)."""
    body = bytearray()
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return bytes(body), False, position
        size = parse_chunk_size(data[position:line_end])
        if size == 0:
            trailer_end = data.find(b"\r\n", line_end + 2)
            if trailer_end >= 0:
                return bytes(body), True, trailer_end + 2
            return bytes(body), False, position
        body += data[line_end + 2 : line_end + 2 + size]
        if line_end + 2 + size + 2 > len(data):
            return bytes(body), False, len(data)
        position = line_end + 2 + size + 2


def parse_http_responses(data: bytes) -> list[HTTPResponse]:
    """Split pipelined HTTP/1.1 responses (chunked, Content-Length or none); the last
    may be cut short (``complete`` False)."""
    responses: list[HTTPResponse] = []
    position = 0
    while position < len(data):
        end = head_end(data, position)
        if end < 0:
            break
        head = parse_response_head(data[position : end - len(HEAD_END)])
        position = end
        if head.chunked:
            body, complete, position = _chunked_body(data, position)
            responses.append(HTTPResponse(head.status, body, complete))
            if not complete:
                break
        else:
            length = int(head.headers.get("content-length", "0"))
            body = data[position : position + length]
            complete = position + length <= len(data)
            position += length
            responses.append(HTTPResponse(head.status, body, complete))
    return responses


# -- WebSocket frames -------------------------------------------------------------------


def ws_frame(opcode: int, payload: bytes, mask: bytes = b"\x00\x00\x00\x00") -> bytes:
    """One final, masked client frame (RFC 6455 5.2; clients must mask, 5.3)."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + mask + _unmask(payload, mask)


def _unmask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` (masking and unmasking alike, 5.3)."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@dataclass
class WSFrames:
    """What a server sent: its text messages, its close frame (if any), trailing bytes."""

    messages: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    trailing: int = 0  # bytes of an incomplete frame at the end


def parse_ws_frames(data: bytes) -> WSFrames:
    """Parse unmasked server frames (RFC 6455 5.2), reassembling fragmented messages;
    stops at a close frame or at an incomplete frame."""
    result = WSFrames()
    position = 0
    fragments: list[bytes] = []
    while position + 2 <= len(data):
        first, second = data[position], data[position + 1]
        opcode, length = first & 0x0F, second & 0x7F
        header = 2
        if length == 126:
            if position + 4 > len(data):
                break
            (length,) = struct.unpack_from("!H", data, position + 2)
            header = 4
        elif length == 127:
            if position + 10 > len(data):
                break
            (length,) = struct.unpack_from("!Q", data, position + 2)
            header = 10
        masked = bool(second & 0x80)  # servers never mask (5.1); clients always do
        if masked:
            header += 4
        if position + header + length > len(data):
            break
        payload = data[position + header : position + header + length]
        if masked:
            payload = _unmask(payload, data[position + header - 4 : position + header])
        position += header + length
        if opcode in (0x1, 0x2, 0x0):
            fragments.append(payload)
            if first & 0x80:
                result.messages.append(b"".join(fragments).decode("utf-8", "replace"))
                fragments = []
        elif opcode == 0x8:
            if len(payload) >= 2:
                (result.close_code,) = struct.unpack_from("!H", payload)
                result.close_reason = payload[2:].decode("utf-8", "replace")
            return result
    result.trailing = len(data) - position
    return result
