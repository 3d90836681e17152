"""The Redis-backed store against a real redis-server: two stores on one Redis
stand for two processes (the process-level tests are in tests/server/test_scaleout.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from support.live import StepBackend
from support.redisutil import RedisServer, free_port

from server.backends.base import ChatRequest
from server.backends.synthetic import SyntheticBackend, synthetic_tokens
from server.config import Settings
from server.core.log import StreamLog
from server.store.redis import RedisStreamStore, StoreUnavailable, connect_check
from server.store.redis.batcher import Pending
from server.wire import errors


class Collector:
    """A follower that keeps every event it is pushed, in order."""

    def __init__(self, log: StreamLog, after: int = -1) -> None:
        self.log = log
        self.next_seq = after + 1
        self.events: list[dict[str, Any]] = []
        self.ended = asyncio.Event()
        log.subscribe(self)
        self.on_append(log)

    def on_append(self, log: Any) -> None:
        texts = log.read(self.next_seq - 1, 1 << 30)
        self.next_seq += len(texts)
        self.events += [json.loads(text) for text in texts]
        if log.ended and self.next_seq > log.last_seq:
            self.ended.set()
            log.unsubscribe(self)

    async def wait(self, timeout: float = 10) -> list[dict[str, Any]]:
        await asyncio.wait_for(self.ended.wait(), timeout)
        return self.events


_SETTINGS = {item.name for item in dataclasses.fields(Settings)}


async def new_store(url: str, backend: Any = None, **kw: Any) -> RedisStreamStore:
    """A connected store on ``url``: ``kw`` are Settings fields or the store's own options."""
    settings = Settings(store=url, **{k: v for k, v in kw.items() if k in _SETTINGS})
    store = RedisStreamStore.from_settings(
        backend
        or SyntheticBackend.from_settings(Settings(tokens_per_second=200, first_token_latency=0)),
        settings,
        **{k: v for k, v in kw.items() if k not in _SETTINGS},
    )
    await store.connect()
    return store


def request(prompt: str = "hello redis", max_tokens: int = 20) -> ChatRequest:
    return ChatRequest.from_prompt(prompt, max_tokens)


async def test_a_stream_created_on_one_process_is_followed_live_on_another(
    redis_server: RedisServer,
) -> None:
    a = await new_store(redis_server.url)
    b = await new_store(redis_server.url)
    try:
        stream = await a.create(request())
        mirror = await b.open(stream.id)
        assert mirror is not None and not mirror.local and mirror.model == stream.model
        remote, local = Collector(mirror), Collector(stream)
        events = await remote.wait()
        assert events == await local.wait()
        assert [e["seq"] for e in events] == list(range(22))
        assert [e["type"] for e in events] == ["start"] + ["delta"] * 20 + ["done"]
        text = "".join(e["content"] for e in events if e["type"] == "delta")
        assert text == "".join(synthetic_tokens("hello redis")[:20])
        # A late reader elsewhere resumes exactly.
        assert mirror.read(15) == stream.read(15)
        assert await b.open("no-such-stream-123") is None
    finally:
        await a.close()
        await b.close()


async def test_the_log_is_a_redis_stream_with_ids_from_seq_and_a_ttl(
    redis_server: RedisServer,
) -> None:
    a = await new_store(redis_server.url, retention=120)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        stream = await a.create(request(max_tokens=5))
        await Collector(stream).wait()
        await a.batcher.written()
        entries = await client.xrange(a.keys.stream(stream.id))
        assert [entry_id for entry_id, _ in entries] == [f"{seq}-1" for seq in range(7)]
        assert [fields["e"].encode() for _, fields in entries] == stream.read(-1, 1 << 30)
        assert 0 < await client.pttl(a.keys.stream(stream.id)) <= 120_000
        meta = await client.hgetall(a.keys.meta(stream.id))
        assert meta == {"owner": a.token, "epoch": "1", "last": "6", "end": "1"}
    finally:
        await client.aclose()
        await a.close()


async def test_appends_of_one_loop_iteration_share_one_call(redis_server: RedisServer) -> None:
    a = await new_store(
        redis_server.url, backend=SyntheticBackend.from_settings(Settings(tokens_per_second=0))
    )
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await client.config_resetstat()
        streams = await asyncio.gather(*(a.create(request(f"p{i}", 50)) for i in range(50)))
        for stream in streams:
            await Collector(stream).wait()
        await a.batcher.written()
        events = sum(stream.last_seq + 1 for stream in streams)
        stats = await client.info("commandstats")
        calls = sum(
            stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval")
        )
        xadds = stats["cmdstat_xadd"]["calls"]
        assert xadds == events > 50 * 40
        # Far fewer round trips than events: everything appended while one
        # write was in flight went out in the next single call.
        assert calls <= events / 10, (calls, events)
    finally:
        await client.aclose()
        await a.close()


class Arrivals(Collector):
    """A Collector that also notes when each push came and how many events it held."""

    def __init__(self, log: StreamLog) -> None:
        self.pushes: list[tuple[float, int]] = []
        super().__init__(log)

    def on_append(self, log: Any) -> None:
        before = len(self.events)
        super().on_append(log)
        if len(self.events) > before:
            self.pushes.append((time.monotonic(), len(self.events) - before))

    async def until(self, count: int, timeout: float = 5) -> None:
        async def arrived() -> None:
            while len(self.events) < count:
                await asyncio.sleep(0.002)

        await asyncio.wait_for(arrived(), timeout)


async def test_batches_start_at_most_once_per_batch_interval(redis_server: RedisServer) -> None:
    backend = StepBackend()
    a = await new_store(redis_server.url, backend=backend, redis_batch_ms=500)
    try:
        stream = await a.create(request())
        arrivals = Arrivals(stream)
        await arrivals.until(1)  # the start event
        await asyncio.sleep(0.6)  # a quiet spell, longer than the interval
        flushes, quiet_since = a.batcher.flushes, time.monotonic()
        backend.release("lone")
        await arrivals.until(2)
        # After a quiet spell an append is written at once, not an interval later.
        lone_shown = arrivals.pushes[-1][0]
        assert lone_shown - quiet_since < 0.25
        for piece in ("one", "two", "three"):  # each in a loop iteration of its own
            backend.release(piece)
            await asyncio.sleep(0.02)
        await arrivals.until(5)
        # Appended within the interval of the last batch: one batch, shown together,
        # no sooner than the interval allows.
        assert a.batcher.flushes == flushes + 2
        trio_shown, trio_count = arrivals.pushes[-1]
        assert trio_count == 3
        assert [e["content"] for e in arrivals.events[-3:]] == ["one", "two", "three"]
        assert trio_shown - lone_shown > 0.25
    finally:
        await a.close()


async def test_cancel_from_another_process_stops_generation_where_it_runs(
    redis_server: RedisServer,
) -> None:
    backend = StepBackend()
    a = await new_store(redis_server.url, backend=backend)
    b = await new_store(redis_server.url)
    try:
        stream = await a.create(request())
        backend.release("one")
        mirror = await b.open(stream.id)
        assert mirror is not None
        remote = Collector(mirror)
        assert await b.cancel(stream.id) is True
        events = await remote.wait()
        assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "cancelled"
        assert stream.ended and stream.events == mirror.events
        assert await b.cancel(stream.id) is False  # already ended
        assert await b.cancel("unknown-stream-1") is None
    finally:
        await a.close()
        await b.close()


async def test_a_generator_that_stops_renewing_is_declared_dead_and_fenced(
    redis_server: RedisServer,
) -> None:
    backend = StepBackend()
    a = await new_store(redis_server.url, backend=backend, lease=0.6)
    b = await new_store(redis_server.url, lease=0.6)
    try:
        stream = await a.create(request())
        backend.release("alive")
        mirror = await b.open(stream.id)
        assert mirror is not None
        remote, here = Collector(mirror), Collector(stream)
        # A stalls: it stops renewing its lease (as a SIGSTOPped or wedged process would).
        for task in a._tasks:
            task.cancel()
        assert a.process_lease.keeper is not None
        a.process_lease.keeper.stop()
        events = await remote.wait(timeout=5)
        assert events[-1]["type"] == "error" and events[-1]["code"] == "interrupted"
        assert [e["seq"] for e in events] == list(range(len(events)))
        # A comes back and generates on: Redis refuses its writes (fencing)...
        backend.release("zombie")
        await a.batcher.written()
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        entries = await client.xrange(a.keys.stream(stream.id))
        await client.aclose()
        assert [fields["e"].encode() for _, fields in entries] == mirror.read(-1, 1 << 30)
        assert "zombie" not in mirror.text()
        # ...and its own readers are told the stream was interrupted (once A has
        # read back what Redis holds: a round trip after the refusal).
        assert (await here.wait(timeout=5))[-1]["code"] == "interrupted"
        assert stream.ended and stream.last_event()["code"] == "interrupted"
    finally:
        await a.close()
        await b.close()


async def test_redis_lost_mid_stream_then_back() -> None:
    redis_server = RedisServer(persistent=True).start()
    backend = StepBackend()
    a = await new_store(redis_server.url, backend=backend)
    b = await new_store(redis_server.url)
    try:
        stream = await a.create(request())
        backend.release("before")
        mirror = await b.open(stream.id)
        assert mirror is not None
        local, remote = Collector(stream), Collector(mirror)
        redis_server.stop()
        for collector in (local, remote):
            last = (await collector.wait())[-1]
            assert (last["type"], last["code"]) == ("error", "store_unavailable")
        with pytest.raises(errors.ProtocolError) as refused:
            await a.create(request())
        assert (refused.value.code, refused.value.status) == ("store_unavailable", 503)
        redis_server.start()
        for _ in range(100):
            if a.available and b.available:
                break
            await asyncio.sleep(0.05)
        assert a.available and b.available
        again = await a.create(request("after the outage", 3))
        mirror2 = await b.open(again.id)
        assert mirror2 is not None
        backend.release("after")
        backend.finish()
        events = await Collector(mirror2).wait()
        assert [e["type"] for e in events] == ["start", "delta", "done"]
        # The first stream's end was written once Redis was back.
        old = await b.open(stream.id)
        assert old is not None and old.events == stream.events
    finally:
        await a.close()
        await b.close()
        redis_server.close()


async def test_drain_lets_generation_finish_until_the_deadline(redis_server: RedisServer) -> None:
    backend = StepBackend()
    a = await new_store(redis_server.url, backend=backend)
    b = await new_store(redis_server.url)
    try:
        stream = await a.create(request())
        backend.release("still")
        mirror = await b.open(stream.id)
        assert mirror is not None
        remote = Collector(mirror)
        drained = asyncio.ensure_future(a.drain(deadline=0.5))
        await asyncio.sleep(0.1)
        with pytest.raises(errors.ProtocolError) as refused:
            await a.create(request())
        assert refused.value.code == "server_shutdown"
        backend.release(" going")  # generation goes on while draining
        await drained
        events = await remote.wait()
        assert [e.get("content") for e in events[1:3]] == ["still", " going"]
        assert (events[-1]["type"], events[-1]["code"]) == ("error", "server_shutdown")
    finally:
        await a.close()
        await b.close()


async def test_retried_batches_never_duplicate(redis_server: RedisServer) -> None:
    a = await new_store(
        redis_server.url, backend=SyntheticBackend.from_settings(Settings(tokens_per_second=0))
    )
    try:
        stream = await a.create(request(max_tokens=3))
        await Collector(stream).wait()
        await a.batcher.written()
        # The same batch again, as after a reply lost on the way back.
        await a.batcher.write({stream.id: Pending(stream, 0, [*stream.read(-1, 1 << 30)], True)})
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        assert await client.xlen(a.keys.stream(stream.id)) == stream.last_seq + 1
        await client.aclose()
    finally:
        await a.close()


async def test_followers_get_a_written_batch_as_the_log_would_give_it(
    redis_server: RedisServer,
) -> None:
    """A batch just written is handed to followers as sent to Redis (its delta
    records expanded once): whatever ``after`` and byte budget they read with,
    they get what the log itself would return."""
    a = await new_store(
        redis_server.url, backend=SyntheticBackend.from_settings(Settings(tokens_per_second=0))
    )
    checked: list[int] = []
    fresh: list[bool] = []

    class Checker:
        def on_append(self, log: Any) -> None:
            for after in range(-1, log.last_seq):
                for max_bytes in (0, 1, 60, 200, 1 << 30):
                    expected = StreamLog.read(log, after, max_bytes)[: log.last_seq - after]
                    assert log.read(after, max_bytes) == expected, (after, max_bytes)
            checked.append(log.last_seq)
            fresh.append(log._fresh is not None)  # the batch path was the one read

    try:
        stream = await a.create(request(max_tokens=30))
        stream.subscribe(Checker())
        events = await Collector(stream).wait()
        assert [e["type"] for e in events] == ["start"] + ["delta"] * 30 + ["done"]
        assert checked and checked[-1] == stream.last_seq
        assert any(fresh)
    finally:
        await a.close()


async def test_length_cap_ends_the_stream_with_a_clear_error(redis_server: RedisServer) -> None:
    a = await new_store(
        redis_server.url,
        backend=SyntheticBackend.from_settings(Settings(tokens_per_second=0)),
        max_events=10,
    )
    try:
        stream = await a.create(request(max_tokens=50))
        events = await Collector(stream).wait()
        assert len(events) == 10
        assert (events[-1]["type"], events[-1]["code"]) == ("error", "stream_too_long")
    finally:
        await a.close()


async def test_unreachable_redis_is_one_clear_line() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailable) as failed:
        await connect_check(url)
    assert str(failed.value).startswith(f"cannot reach Redis at {url}: ")
    assert "\n" not in str(failed.value)
