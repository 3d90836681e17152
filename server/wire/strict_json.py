"""Client JSON, parsed strictly and with a bound on nesting. Pure code.

RFC 8259 allows parsers to limit nesting depth (section 9). twinstream does, at
:data:`MAX_DEPTH` levels of objects and arrays, and checks it *before* parsing, in
one linear pass that keeps no stack: whether a message is refused never depends on
the interpreter's recursion limit (Python's own parser and encoder recurse once
per level), and every value a protocol view echoes back (a WebSocket ``ref``, say)
can be encoded again.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import ProtocolError

__all__ = ["MAX_DEPTH", "TooDeep", "loads_strict", "loads_object", "nests_deeper_than"]

#: How deep client JSON may nest, objects and arrays counted: deep enough for any
#: request (a JSON schema, tool arguments), far below any recursion limit.
MAX_DEPTH = 64

# The characters that change the scan's state: brackets, and inside strings the
# quote and the backslash (an escaped quote does not end a string).
_SPECIAL_TEXT = re.compile(r'[\[\]{}"\\]')
_SPECIAL_BYTES = re.compile(rb'[\[\]{}"\\]')


class TooDeep(ValueError):
    """The document nests deeper than allowed."""


def nests_deeper_than(text: str | bytes, limit: int) -> bool:
    """True if ``text`` opens more than ``limit`` objects and arrays inside one
    another (brackets inside strings do not count). Linear in the number of
    brackets, quotes and backslashes; stops at the first level over the limit."""
    special = _SPECIAL_BYTES if isinstance(text, bytes) else _SPECIAL_TEXT
    depth = 0
    in_string = False
    escaped_at = -1
    for match in special.finditer(text):  # type: ignore[arg-type]
        at = match.start()
        if at == escaped_at:
            continue
        char = text[at : at + 1]
        if in_string:
            if char in (b"\\", "\\"):
                escaped_at = at + 1
            elif char in (b'"', '"'):
                in_string = False
        elif char in (b'"', '"'):
            in_string = True
        elif char in (b"[", b"{", "[", "{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse client JSON strictly (RFC 8259): no NaN/Infinity, no lone UTF-16
    surrogates (``"\\ud800"`` decodes to a str that cannot be encoded as UTF-8),
    at most ``max_depth`` levels deep (:class:`TooDeep`). Raises ValueError."""
    if nests_deeper_than(text, max_depth):
        raise TooDeep(f"nests deeper than {max_depth} levels of objects and arrays")
    value = json.loads(text, parse_constant=_reject_constant)
    try:
        # Raises ValueError for 1e999 (parsed as inf), UnicodeEncodeError
        # (a ValueError too) for a lone surrogate.
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string holds a lone surrogate") from None
    return value


def loads_object(text: str | bytes, what: str, code: str = "invalid_message") -> dict[str, Any]:
    """A client's JSON object (:func:`loads_strict`). ``what`` names it in the
    errors ("the request body", "the message"): ProtocolError ``invalid_json``
    if it is not strict JSON or nests too deep, ``code`` if it is not an object."""
    try:
        value = loads_strict(text)
    except TooDeep:
        raise ProtocolError(
            "invalid_json", f"{what} nests deeper than {MAX_DEPTH} levels of objects and arrays"
        ) from None
    except ValueError:
        raise ProtocolError("invalid_json", f"{what} is not valid JSON (RFC 8259, UTF-8)") from None
    if not isinstance(value, dict):
        raise ProtocolError(code, f"{what} must be a JSON object")
    return value


def depth_of(value: Any) -> int:
    """How many objects and arrays nest in ``value`` (0 for a scalar), counted
    with an explicit stack, not recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest
