"""The stream store over Redis (``--store redis://...``): see :mod:`.store`."""

from __future__ import annotations

from .connection import StoreUnavailable, connect_check
from .mirror import RedisMirror
from .state import State
from .store import RedisStreamStore
from .stream import RedisStream

__all__ = [
    "RedisMirror",
    "RedisStream",
    "RedisStreamStore",
    "State",
    "StoreUnavailable",
    "connect_check",
]
