"""Small JSON records kept beside the streams, for the protocol views that need
more than a stream's events: a Responses API response's request and status, the
AI SDK chat whose answer is live. :class:`Records` is the seam; the memory
store keeps them in a dict (:class:`MemoryRecords`), the Redis store under one
key each (``server.store.redis.records``). A record lives ``ttl`` seconds
(the store's ``retention`` unless told otherwise) and is a JSON object."""

from __future__ import annotations

import heapq
import json
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

    async def swap(
        self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None
    ) -> dict[str, Any] | None:
        """:meth:`put`, returning the record it replaced (None if there was
        none), in one step: two concurrent swaps each see the other's value."""
        ...

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record, or None if never kept, deleted or expired."""
        ...

    async def expire(self, kind: str, key: str, ttl: float) -> bool:
        """Make the record live ``ttl`` s from now, if it is there (a deleted
        record stays deleted): True if it was."""
        ...

    async def delete(self, kind: str, key: str) -> bool:
        """Forget it: True if it was there."""
        ...


def _size(kind: str, key: str, value: dict[str, Any]) -> int:
    # json's default encoder is built once (other separators build one per call);
    # its spaces make the count a little high, which a bound may be
    return len(kind) + len(key) + len(json.dumps(value))


class MemoryRecords:
    """Records in this process, bounded in time, count and bytes.

    Deadlines are kept in a heap, so :meth:`reap` (the store's reaper calls it)
    forgets expired records in deadline order, examining only those due. Past
    ``max_records`` or ``max_bytes`` the record due first goes first: a live
    response's record (its deadline the retention plus the generation's time)
    outlasts ended ones."""

    def __init__(
        self,
        retention: float,
        max_records: int,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 1 << 62,
    ) -> None:
        self.retention = retention
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.clock = clock
        # name -> (deadline, value, size)
        self._items: dict[tuple[str, str], tuple[float, dict[str, Any], int]] = {}
        # (deadline, name): stale once the item's deadline differs (re-put, expire, delete)
        self._deadlines: list[tuple[float, tuple[str, str]]] = []
        #: bytes of the records kept (their JSON, kind and key)
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def _forget(self, name: tuple[str, str]) -> dict[str, Any] | None:
        item = self._items.pop(name, None)
        if item is None:
            return None
        self.nbytes -= item[2]
        return item[1]

    def _pop_first(self, now: float | None) -> bool:
        """Forget the record due first (only if due by ``now``, when given)."""
        heap = self._deadlines
        while heap:
            deadline, name = heap[0]
            item = self._items.get(name)
            if item is None or item[0] != deadline:  # stale entry
                heapq.heappop(heap)
                continue
            if now is not None and deadline > now:
                return False
            heapq.heappop(heap)
            self._forget(name)
            return True
        return False

    def _keep(
        self, name: tuple[str, str], deadline: float, value: dict[str, Any], size: int
    ) -> None:
        self._items[name] = (deadline, value, size)
        heapq.heappush(self._deadlines, (deadline, name))
        if len(self._deadlines) > 2 * len(self._items) + 64:  # too many stale entries
            self._deadlines = [(item[0], key) for key, item in self._items.items()]
            heapq.heapify(self._deadlines)

    def put_now(self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        name = (kind, key)
        self._forget(name)
        size = _size(kind, key, value)
        self._keep(name, self.clock() + (self.retention if ttl is None else ttl), value, size)
        self.nbytes += size
        while len(self._items) > self.max_records or self.nbytes > self.max_bytes:
            self._pop_first(None)

    def get_now(self, kind: str, key: str) -> dict[str, Any] | None:
        item = self._items.get((kind, key))
        if item is None:
            return None
        if item[0] <= self.clock():
            self._forget((kind, key))
            return None
        return item[1]

    def reap(self) -> int:
        """Forget the records past their deadline; how many were examined."""
        now = self.clock()
        examined = 0
        while self._pop_first(now):
            examined += 1
        return examined

    async def put(
        self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None
    ) -> None:
        self.put_now(kind, key, value, ttl)

    async def swap(
        self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None
    ) -> dict[str, Any] | None:
        previous = self.get_now(kind, key)
        self.put_now(kind, key, value, ttl)
        return previous

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.get_now(kind, key)

    async def expire(self, kind: str, key: str, ttl: float) -> bool:
        value = self.get_now(kind, key)
        if value is None:
            return False
        name = (kind, key)
        self._keep(name, self.clock() + ttl, value, self._items[name][2])
        return True

    async def delete(self, kind: str, key: str) -> bool:
        live = self.get_now(kind, key) is not None
        self._forget((kind, key))
        return live
