"""The record seam on both stores: put, get, replace, delete, expiry."""

from __future__ import annotations

import asyncio

from support.redisutil import RedisServer

from server.core.records import MemoryRecords
from server.store.redis.keys import Keys


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_memory_records_expire_and_are_bounded() -> None:
    clock = Clock()
    records = MemoryRecords(retention=10.0, max_records=2, clock=clock)

    async def run() -> None:
        await records.put("response", "a", {"n": 1})
        assert await records.get("response", "a") == {"n": 1}
        assert await records.get("chat", "a") is None  # kinds are separate
        await records.put("response", "a", {"n": 2}, ttl=1.0)
        assert await records.get("response", "a") == {"n": 2}
        clock.now += 1.0
        assert await records.get("response", "a") is None  # expired at its deadline
        await records.put("response", "b", {})
        await records.put("response", "c", {})
        await records.put("response", "d", {})
        assert len(records) == 2
        assert await records.get("response", "b") is None  # the oldest went first
        assert await records.delete("response", "c") is True
        assert await records.delete("response", "c") is False

    asyncio.run(run())


def test_redis_key_shares_the_streams_hash_slot() -> None:
    assert Keys("t:").record("response", "abc") == "t:d:response:{abc}"


def test_redis_records(redis_server: RedisServer) -> None:
    from server.backends.synthetic import SyntheticBackend
    from server.config import Settings
    from server.store.redis import RedisStreamStore

    settings = Settings(store=redis_server.url, retention=30.0)

    async def run() -> None:
        store = RedisStreamStore.from_settings(
            SyntheticBackend.from_settings(settings), settings, prefix="rec:"
        )
        await store.connect()
        try:
            await store.records.put("chat", "x", {"stream": "s1"})
            assert await store.records.get("chat", "x") == {"stream": "s1"}
            ttl = await store.redis.pttl("rec:d:chat:{x}")
            assert 0 < ttl <= 30_000
            await store.records.put("chat", "x", {"stream": "s2"}, ttl=0.05)
            await asyncio.sleep(0.2)
            assert await store.records.get("chat", "x") is None
            await store.records.put("chat", "y", {})
            assert await store.records.delete("chat", "y") is True
            assert await store.records.delete("chat", "y") is False
        finally:
            await store.close()

    asyncio.run(run())
