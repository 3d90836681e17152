"""The record seam on both stores: put, get, replace, delete, expiry."""

from __future__ import annotations

import asyncio
from typing import Any

from support.redisutil import RedisServer, run_with_store

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
    async def test(store: Any) -> None:
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

    run_with_store(redis_server, test, prefix="rec:", tokens_per_second=30)


def test_memory_records_swap_and_expire() -> None:
    clock = Clock()
    records = MemoryRecords(retention=10.0, max_records=10, clock=clock)

    async def run() -> None:
        assert await records.swap("chat", "c", {"n": 1}) is None
        assert await records.swap("chat", "c", {"n": 2}) == {"n": 1}
        assert await records.get("chat", "c") == {"n": 2}
        assert await records.expire("chat", "c", 30.0) is True
        clock.now += 20.0  # past the retention, within the new ttl
        assert await records.get("chat", "c") == {"n": 2}
        assert await records.delete("chat", "c") is True
        assert await records.expire("chat", "c", 30.0) is False  # deleted stays deleted
        assert await records.get("chat", "c") is None
        await records.put("chat", "d", {}, ttl=1.0)
        clock.now += 1.0
        assert await records.swap("chat", "d", {"n": 3}) is None  # an expired one is none

    asyncio.run(run())


def test_memory_records_are_reaped_in_deadline_order_looking_only_at_those_due() -> None:
    clock = Clock()
    records = MemoryRecords(retention=10.0, max_records=1000, clock=clock)
    for index in range(100):
        records.put_now("chat", f"late{index}", {"n": index}, ttl=100.0)
    for index in range(5):
        records.put_now("chat", f"soon{index}", {"n": index}, ttl=1.0 + index)
    records.put_now("chat", "soon0", {"n": "again"}, ttl=50.0)  # re-put: a later deadline
    assert records.reap() == 0
    clock.now += 3.0
    assert records.reap() == 2  # soon1 and soon2; not the 100 late ones, not soon0
    assert len(records) == 103
    assert records.get_now("chat", "soon0") == {"n": "again"}
    assert records.get_now("chat", "soon3") == {"n": 3}
    clock.now += 97.0
    assert records.reap() == 103
    assert len(records) == 0 and records.nbytes == 0


def test_memory_records_are_bounded_in_bytes_and_the_one_due_first_goes_first() -> None:
    clock = Clock()
    records = MemoryRecords(retention=10.0, max_records=1000, clock=clock, max_bytes=2000)
    # a response still generating: its record lives the retention and more
    records.put_now("response", "live", {"stream": "live"}, ttl=3610.0)
    for index in range(100):  # a burst of chats, each kept the retention
        records.put_now("ai-chat", f"c{index}", {"stream": "x" * 40})
    assert records.nbytes <= 2000
    assert records.get_now("response", "live") == {"stream": "live"}
    assert records.get_now("ai-chat", "c99") is not None
    assert records.get_now("ai-chat", "c0") is None


def test_the_memory_stores_reaper_forgets_expired_records() -> None:
    from server.backends.synthetic import SyntheticBackend
    from server.config import Settings
    from server.core.store import MemoryStreamStore

    clock = Clock()
    settings = Settings(retention=10.0)
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(settings), settings, clock=clock
    )
    store.records.put_now("response", "a", {"prompt": "secret"})
    clock.now += 10.0
    store.reap()  # nobody reads it again: the reaper alone forgets it
    assert len(store.records) == 0 and store.records.nbytes == 0
    assert store.last_reap_examined == 1


def test_redis_records_swap_and_expire(redis_server: RedisServer) -> None:
    async def test(store: Any) -> None:
        records = store.records
        assert await records.swap("chat", "s", {"n": 1}) is None
        assert await records.swap("chat", "s", {"n": 2}) == {"n": 1}
        assert 0 < await store.redis.pttl("rec:d:chat:{s}") <= 30_000
        assert await records.expire("chat", "s", 100.0) is True
        assert 30_000 < await store.redis.pttl("rec:d:chat:{s}") <= 100_000
        assert await records.delete("chat", "s") is True
        assert await records.expire("chat", "s", 100.0) is False  # deleted stays deleted
        assert await records.get("chat", "s") is None

    run_with_store(redis_server, test, prefix="rec:", tokens_per_second=30)
