"""Two real twinstream processes on a real Redis Cluster (three masters, three
replicas): streams spread over every master, resumed exactly on the other
process over SSE and WebSocket, cancelled from the other process."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis.cluster
from support.cluster import Followed, ServerProc, follow_sse, follow_ws
from support.redis_cluster import RedisCluster

from server.store.redis.keys import Keys

from ...test_scaleout import assert_exact, post, read_some

KEYS = Keys("twinstream:")


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    started: list[ServerProc] = []
    yield started
    for server in started:
        server.close()


def start(servers: list[ServerProc], store: str, *args: str) -> ServerProc:
    server = ServerProc("--store", store, "--log-level", "warning", *args)
    servers.append(server)
    return server


PACE = ("--tokens-per-second", "100", "--first-token-latency", "0")


async def test_two_processes_on_a_cluster_resume_and_cancel_across(
    redis_cluster: RedisCluster, servers: list[ServerProc]
) -> None:
    a = start(servers, redis_cluster.url, *PACE)
    b = start(servers, redis_cluster.seed_url, *PACE)  # one node given: the rest discovered
    # Streams started on A, cut after 5 events, finished from B over SSE.
    prompts = [f"cluster sse {n}" for n in range(12)]
    heads = await asyncio.gather(*(read_some(a.url, p, 40, 5) for p in prompts))
    records = await asyncio.gather(
        *(follow_sse([b.url], p, 40, record=Followed(events=h)) for p, h in zip(prompts, heads))
    )
    for prompt, record in zip(prompts, records):
        assert_exact(record, prompt, 40)
        assert record.hosts == {b.url}
    masters = {redis_cluster.node_of_key(KEYS.stream(r.stream)) for r in records}
    assert masters == set(redis_cluster.master_ports()), "streams on every master"
    # WebSocket: started on B, its socket closed mid-stream, resumed on A.
    ws_record = Followed()
    follower = asyncio.ensure_future(follow_ws([b.url], "cluster ws", 60, record=ws_record))
    while len(ws_record.events) < 5:
        await asyncio.sleep(0.005)
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    await follow_ws([a.url], "cluster ws", 60, record=ws_record)
    assert_exact(ws_record, "cluster ws", 60)
    assert a.url in ws_record.hosts
    # Cancel from B streams generated on A (their meta on several masters).
    slow = await asyncio.gather(*(read_some(a.url, f"cancel {n}", 2000, 1) for n in range(6)))
    for head in slow:
        status, body = post(f"{b.url}/cancel?stream={head[0]['stream']}")
        assert (status, body["cancelled"]) == (200, True)
    for head in slow:
        ended = await follow_sse([b.url], "", 0, record=Followed(events=head))
        assert ended.last["type"] == "done" and ended.last["finish_reason"] == "cancelled"
        assert ended.seqs == list(range(len(ended.events)))


async def test_a_generator_stopped_past_its_lease_is_fenced_out_of_its_streams(
    redis_cluster: RedisCluster, servers: list[ServerProc]
) -> None:
    a = start(servers, redis_cluster.url, "--tokens-per-second", "20", "--first-token-latency", "0")
    b = start(servers, redis_cluster.url)
    heads = await asyncio.gather(*(read_some(a.url, f"frozen {n}", 2000, 3) for n in range(6)))
    followers = [
        asyncio.ensure_future(follow_sse([b.url], "", 0, record=Followed(events=head)))
        for head in heads
    ]
    # ...and the first on A too, where it is generated.
    on_a = asyncio.ensure_future(
        follow_sse([a.url], "", 0, record=Followed(events=list(heads[0])), deadline=60)
    )
    await asyncio.sleep(0.5)  # every reader on B is following live
    os.kill(a.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        records = await asyncio.wait_for(asyncio.gather(*followers), timeout=20)
        took = time.monotonic() - stopped
    finally:
        os.kill(a.pid, signal.SIGCONT)
    # A's own reader is given the log as Redis holds it: the same events, the same end.
    assert (await asyncio.wait_for(on_a, timeout=20)).events == records[0].events
    for record in records:
        assert record.last["type"] == "error" and record.last["code"] == "interrupted"
        assert record.seqs == list(range(len(record.events)))
    assert took < 8, f"readers waited {took:.1f}s for interrupted"
    # Thawed, A generates on (its pacer wakes) but writes nothing more into them.
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port)
    try:
        before = [client.xlen(KEYS.stream(r.stream)) for r in records]
        await asyncio.sleep(2.0)
        after = [client.xlen(KEYS.stream(r.stream)) for r in records]
        metas = [client.hgetall(KEYS.meta(r.stream)) for r in records]
    finally:
        client.close()
    assert after == before == [len(r.events) for r in records]
    for meta in metas:
        assert meta[b"epoch"] == b"2" and meta[b"end"] == b"1"
    # A serves again, under a new lease: a new stream on A completes.
    record = await follow_sse([a.url], "after the thaw", 10)
    assert_exact(record, "after the thaw", 10)


async def test_a_stream_whose_slot_moves_mid_stream_stays_exact(
    redis_cluster: RedisCluster, servers: list[ServerProc]
) -> None:
    a = start(servers, redis_cluster.url, "--tokens-per-second", "40", "--first-token-latency", "0")
    b = start(servers, redis_cluster.url)
    head = await read_some(a.url, "moving slot", 160, 3)
    stream = head[0]["stream"]
    on_a = asyncio.ensure_future(
        follow_sse([a.url], "", 0, record=Followed(events=list(head)), deadline=60)
    )
    on_b = asyncio.ensure_future(
        follow_sse([b.url], "", 0, record=Followed(events=list(head)), deadline=60)
    )
    await asyncio.sleep(1.0)
    source = redis_cluster.node_of_key(KEYS.stream(stream))
    target = next(port for port in redis_cluster.master_ports() if port != source)
    await asyncio.get_running_loop().run_in_executor(
        None, redis_cluster.move_slot, KEYS.stream(stream), target
    )
    assert redis_cluster.node_of_key(KEYS.stream(stream)) == target
    for record in await asyncio.gather(on_a, on_b):
        assert_exact(record, "moving slot", 160)
