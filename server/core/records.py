"""Small JSON records kept beside the streams, for the protocol views that need
more than a stream's events: a Responses API response's request and status, the
AI SDK chat whose answer is live. :class:`Records` is the seam; the memory
store keeps them in a dict (:class:`MemoryRecords`), the Redis store under one
key each (``server.store.redis.records``). A record lives ``ttl`` seconds
(the store's ``retention`` unless told otherwise) and is a JSON object."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Records", "MemoryRecords"]


class Records(Protocol):
    """Records by ``kind`` (a short name such as ``"response"``) and ``key``."""

    async def put(
        self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None
    ) -> None:
        """Keep ``value`` (replacing any) for ``ttl`` s (default: the store's retention)."""
        ...

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record, or None if never kept, deleted or expired."""
        ...

    async def delete(self, kind: str, key: str) -> bool:
        """Forget it: True if it was there."""
        ...


class MemoryRecords:
    """Records in this process, expired lazily and bounded in count (oldest first)."""

    def __init__(
        self,
        retention: float,
        max_records: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retention = retention
        self.max_records = max_records
        self.clock = clock
        # key -> (deadline, value); insertion order is put order (a put moves it to the end)
        self._items: collections.OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._items)

    def put_now(
        self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None
    ) -> None:
        name = (kind, key)
        self._items.pop(name, None)
        self._items[name] = (self.clock() + (self.retention if ttl is None else ttl), value)
        while len(self._items) > self.max_records:
            self._items.popitem(last=False)

    def get_now(self, kind: str, key: str) -> dict[str, Any] | None:
        item = self._items.get((kind, key))
        if item is None:
            return None
        if item[0] <= self.clock():
            del self._items[(kind, key)]
            return None
        return item[1]

    async def put(
        self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None
    ) -> None:
        self.put_now(kind, key, value, ttl)

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.get_now(kind, key)

    async def delete(self, kind: str, key: str) -> bool:
        live = self.get_now(kind, key) is not None
        self._items.pop((kind, key), None)
        return live
