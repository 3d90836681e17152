"""The Redis store on a real Redis Cluster (three masters, three replicas):
two stores stand for two processes (the process-level tests are in
test_cluster_processes.py)."""

from __future__ import annotations

import asyncio

import redis.asyncio.cluster as aiocluster
from support.redis_cluster import RedisCluster

from server.backends.synthetic import SyntheticBackend, synthetic_tokens
from server.config import Settings
from server.store.redis import StoreUnavailable, connect_check
from server.store.redis.connection import Target
from server.store.redis.ids import TAG_LIFETIME, StreamIds
from server.wire.ids import STREAM_ID

from .test_store import Collector, new_store, request


async def test_every_key_of_a_stream_shares_its_slot_and_streams_spread_over_every_master(
    redis_cluster: RedisCluster,
) -> None:
    a = await new_store(redis_cluster.seed_url)
    try:
        streams = [await a.create(request(f"spread {n}", max_tokens=3)) for n in range(24)]
        for stream in streams:
            await Collector(stream).wait()
        await a.batcher.written()
        target = Target(redis_cluster.url)
        masters = set()
        for stream in streams:
            keys = a.keys
            names = [keys.stream(stream.id), keys.meta(stream.id), keys.channel(stream.id)]
            assert len({target.slot(name) for name in names}) == 1
            masters.add(redis_cluster.node_of_key(keys.stream(stream.id)))
        assert masters == set(redis_cluster.master_ports())
    finally:
        await a.close()


async def test_a_flush_is_one_script_call_per_master_not_one_per_stream(
    redis_cluster: RedisCluster,
) -> None:
    """The ids a process makes share one tag per master (ids.py), so the streams
    of a flush on one master share a slot and one EVALSHA writes them all."""
    a = await new_store(redis_cluster.url)
    try:
        redis_cluster.flush()  # empty, and the command counts from here
        flushes = a.batcher.flushes
        streams = await asyncio.gather(
            *(a.create(request(f"bucket {n}", max_tokens=30)) for n in range(60))
        )
        tags = {stream.id[:4] for stream in streams}
        assert len(tags) == 3  # one per master
        assert {redis_cluster.node_of_key(a.keys.stream(tag)) for tag in tags} == set(
            redis_cluster.master_ports()
        )
        texts = [await Collector(stream).wait() for stream in streams]
        await a.batcher.written()
        flushes = a.batcher.flushes - flushes
        calls = redis_cluster.calls().get("evalsha", 0)
        assert all(events[-1]["type"] == "done" for events in texts)
        assert flushes > 0
        # at most one call per master per flush (a node's share of a flush is
        # one pipeline; its streams are one slot group): 60 streams x 30 tokens
        # would otherwise be one call per stream per flush
        assert calls <= 3 * flushes, (calls, flushes)
    finally:
        await a.close()


async def test_a_process_draws_fresh_tags_as_time_passes(redis_cluster: RedisCluster) -> None:
    a = await new_store(redis_cluster.url)
    try:
        now = [0.0]
        ids = StreamIds(a.routes, a.keys, clock=lambda: now[0])
        first = {ids.new()[:4] for _ in range(30)}
        assert len(first) == 3
        now[0] += TAG_LIFETIME + 1
        later = {ids.new()[:4] for _ in range(30)}
        assert len(later) == 3 and not first & later
        made = ids.new()
        assert len(made) == 26 and STREAM_ID.fullmatch(made)  # tag + 128 random bits
    finally:
        await a.close()


async def test_a_stream_is_followed_live_and_cancelled_from_another_process(
    redis_cluster: RedisCluster,
) -> None:
    slow = SyntheticBackend.from_settings(Settings(tokens_per_second=20, first_token_latency=0))
    a = await new_store(redis_cluster.url)
    b = await new_store(redis_cluster.seed_url, backend=slow)
    try:
        streams = [await a.create(request(f"live {n}")) for n in range(6)]
        for stream in streams:
            mirror = await b.open(stream.id)
            assert mirror is not None and not mirror.local
            remote, local = Collector(mirror), Collector(stream)
            assert await remote.wait() == await local.wait()
            prompt = f"live {streams.index(stream)}"
            assert mirror.text() == "".join(synthetic_tokens(prompt)[:20])
        # cancel, from the process that does not generate it
        live = await b.create(request("cancel me", max_tokens=2000))
        mirror = await a.open(live.id)
        assert mirror is not None
        collector = Collector(mirror)
        await asyncio.sleep(0.3)
        assert await a.cancel(live.id) is True
        events = await collector.wait()
        assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "cancelled"
        assert [e["seq"] for e in events] == list(range(len(events)))
    finally:
        await a.close()
        await b.close()


async def test_records_live_beside_their_stream_on_the_cluster(
    redis_cluster: RedisCluster,
) -> None:
    a = await new_store(redis_cluster.url)
    b = await new_store(redis_cluster.url)
    try:
        for n in range(12):
            await a.records.put("response", f"resp_{n}", {"n": n})
        assert [await b.records.get("response", f"resp_{n}") for n in range(12)] == [
            {"n": n} for n in range(12)
        ]
        assert await b.records.delete("response", "resp_3") is True
        assert await a.records.get("response", "resp_3") is None
    finally:
        await a.close()
        await b.close()


async def test_connect_check_names_an_unreachable_cluster() -> None:
    try:
        await connect_check("redis-cluster://127.0.0.1:1")
    except StoreUnavailable as exc:
        assert "redis-cluster://127.0.0.1:1" in str(exc)
    else:
        raise AssertionError("an unreachable cluster passed the check")
    assert aiocluster.RedisCluster is not None
