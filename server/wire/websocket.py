"""WebSocket framing, the server's side (RFC 6455 5.2). Pure code: bytes in, bytes out."""

from __future__ import annotations

import struct

__all__ = ["text_frame"]

_TEXT = 0x81  # FIN + text opcode (RFC 6455 5.2)
_RSV1 = 0x40  # "compressed" bit of permessage-deflate (RFC 7692 6)


def text_frame(payload: bytes, compressed: bool = False) -> bytes:
    """One unmasked, unfragmented text frame carrying ``payload`` (a server never
    masks: RFC 6455 5.1). ``compressed`` sets RSV1 for a permessage-deflate
    payload (RFC 7692 6)."""
    first = _TEXT | _RSV1 if compressed else _TEXT
    length = len(payload)
    # The shortest length encoding is required (RFC 6455 5.2: "the minimal number of bytes").
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 0x10000:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload
