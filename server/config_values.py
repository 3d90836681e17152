"""The value parsers of :mod:`server.config`: each turns a flag's or an environment
variable's text into a setting's value, or raises ``argparse.ArgumentTypeError``
saying what is allowed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "non_negative",
    "positive_int",
    "port",
    "size",
    "boolean",
    "store_url",
    "url_path",
    "comma_list",
]


def non_negative(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        value = convert(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    check.__name__ = convert.__name__
    return check


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a TCP port is a number 0..65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0..65535, got {text}")
    return value


def size(text: str) -> int:
    """Bytes, with an optional K/M/G (KiB/MiB/GiB) suffix: ``1M`` is 1,048,576."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a size is a number of bytes, optionally with K, M or G, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def store_url(text: str) -> str:
    """``memory``, a ``redis://HOST:PORT/DB`` URL (``rediss://`` for TLS), or a
    Redis Cluster: ``redis-cluster://HOST:PORT[,HOST:PORT...]`` (any of its nodes)."""
    if text == "memory":
        return text
    parts = urlsplit(text)
    problem = ""
    if parts.scheme == "redis-cluster":
        for node in parts.netloc.rpartition("@")[2].split(","):
            host, _, port = node.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                problem = "expected redis-cluster://HOST:PORT[,HOST:PORT...]"
    elif parts.scheme not in ("redis", "rediss") or not parts.hostname:
        problem = "expected 'memory', redis://HOST:PORT/DB or redis-cluster://HOST:PORT,..."
    else:
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            problem = "the port must be 0..65535"
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            problem = "the database must be a number, as in redis://HOST:PORT/0"
    if problem:
        raise argparse.ArgumentTypeError(f"{problem}, got {text!r}")
    return text


def url_path(text: str) -> str:
    """An absolute URL path with no trailing slash, query or pattern characters."""
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", text):
        raise argparse.ArgumentTypeError(
            f"expected a path such as /api/chat (letters, digits, ._~-), got {text!r}"
        )
    return text


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# --- declarations -------------------------------------------------------------------------
