"""The Redis store's :class:`~server.core.records.Records`: one string key per
record, ``{prefix}d:{kind}:{{tag}}{rest}``, with Redis's own expiry. Tagged as a
stream's keys are (:func:`~.keys.tagged`): a record in the same cluster slot as
the stream of the same id."""

from __future__ import annotations

import json
from typing import Any, Protocol

from redis.exceptions import RedisError

from .connection import unavailable
from .keys import Keys

__all__ = ["RedisRecords"]


class RecordsHost(Protocol):
    keys: Keys
    retention: float
    redis: Any


class RedisRecords:
    def __init__(self, host: RecordsHost) -> None:
        self.host = host

    def _name(self, kind: str, key: str) -> str:
        return self.host.keys.record(kind, key)

    async def put(
        self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None
    ) -> None:
        seconds = self.host.retention if ttl is None else ttl
        try:
            await self.host.redis.set(
                self._name(kind, key),
                json.dumps(value, separators=(",", ":")),
                px=max(1, int(seconds * 1000)),
            )
        except (RedisError, OSError):
            raise unavailable() from None

    async def swap(
        self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None
    ) -> dict[str, Any] | None:
        seconds = self.host.retention if ttl is None else ttl
        try:
            text = await self.host.redis.set(
                self._name(kind, key),
                json.dumps(value, separators=(",", ":")),
                px=max(1, int(seconds * 1000)),
                get=True,
            )
        except (RedisError, OSError):
            raise unavailable() from None
        return None if text is None else json.loads(text)

    async def expire(self, kind: str, key: str, ttl: float) -> bool:
        try:
            return bool(
                await self.host.redis.pexpire(self._name(kind, key), max(1, int(ttl * 1000)))
            )
        except (RedisError, OSError):
            raise unavailable() from None

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        try:
            text = await self.host.redis.get(self._name(kind, key))
        except (RedisError, OSError):
            raise unavailable() from None
        return None if text is None else json.loads(text)

    async def delete(self, kind: str, key: str) -> bool:
        try:
            return bool(await self.host.redis.delete(self._name(kind, key)))
        except (RedisError, OSError):
            raise unavailable() from None
