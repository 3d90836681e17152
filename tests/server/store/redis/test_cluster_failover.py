"""A master of a real Redis Cluster SIGKILLed while 24 streams are live on two
real twinstream processes: every stream ends exact, or with an explicit error
event, never with a gap, a repeat or a different text; new streams work again
within 20 s without a restart. With --redis-wait-ms no stream is lost at all."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from support.cluster import Followed, ServerProc, follow_sse
from support.redis_cluster import RedisCluster
from websockets.asyncio.client import connect as ws_connect

from benchmarks.clients import Endpoint, SSEConnection
from server.store.redis.keys import Keys

from ...test_scaleout import expected, read_some

KEYS = Keys("twinstream:")
EXPLICIT = {"store_unavailable", "interrupted", "stream_truncated"}
TOKENS = 100


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    started: list[ServerProc] = []
    yield started
    for server in started:
        server.close()


def verdict(record: Followed, prompt: str) -> str:
    """'exact', or 'error:<code>' for an explicit end; anything else fails."""
    assert record.seqs == list(range(len(record.events))), f"gap or repeat: {record.seqs}"
    full = expected(prompt, TOKENS)
    assert full.startswith(record.text), "a different text"
    if record.last["type"] == "done":
        assert record.text == full
        return "exact"
    assert record.last["type"] == "error" and record.last["code"] in EXPLICIT, record.last
    return f"error:{record.last['code']}"


def create(url: str, prompt: str) -> int:
    """POST /streams once (no retry): its status."""
    body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": 3})
    request = urllib.request.Request(
        url + "/streams", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


async def new_streams_work(urls: list[str], started: float) -> float:
    """Seconds from ``started`` until 12 new streams in a row (random ids, so
    spread over the slots of every master) are created at the first try."""
    loop = asyncio.get_running_loop()
    n = 0
    while True:
        statuses = await asyncio.gather(
            *(loop.run_in_executor(None, create, urls[k % 2], f"new {n} {k}") for k in range(12))
        )
        if all(status == 201 for status in statuses):
            return time.monotonic() - started
        n += 1
        await asyncio.sleep(0.1)


async def run_failover(cluster: RedisCluster, servers: list[ServerProc], *extra: str) -> dict:
    pace = ("--tokens-per-second", "20", "--first-token-latency", "0", "--log-level", "warning")
    a = ServerProc("--store", cluster.url, *pace, *extra)
    servers.append(a)
    b = ServerProc("--store", cluster.url, *pace, *extra)
    servers.append(b)
    prompts = [f"failover {n}" for n in range(24)]
    # All generated on A; half read on A, half on B (through B's mirrors).
    heads = await asyncio.gather(*(read_some(a.url, p, TOKENS, 2) for p in prompts))
    followers = [
        asyncio.ensure_future(
            follow_sse([(a.url, b.url)[n % 2]], p, TOKENS, record=Followed(events=h), deadline=60)
        )
        for n, (p, h) in enumerate(zip(prompts, heads))
    ]
    await asyncio.sleep(1.0)
    victim = cluster.node_of_key(KEYS.stream(heads[0][0]["stream"]))
    on_victim = sum(cluster.node_of_key(KEYS.stream(h[0]["stream"])) == victim for h in heads)
    cluster.kill(victim)
    killed = time.monotonic()
    await asyncio.sleep(0.2)  # the kill is seen before new streams are timed
    serving_again = await new_streams_work([a.url, b.url], killed)
    records = await asyncio.gather(*followers)
    verdicts = [verdict(record, prompt) for record, prompt in zip(records, prompts)]
    figures = {
        "streams": len(prompts),
        "on_killed_master": on_victim,
        "exact": verdicts.count("exact"),
        "errors": sorted(v for v in verdicts if v != "exact"),
        "new_streams_after_s": round(serving_again, 1),
    }
    print(f"\nfailover {' '.join(extra) or '(default)'}: {figures}")
    return figures


@pytest.mark.timeout(seconds=150)
async def test_a_master_killed_mid_stream(
    own_cluster: RedisCluster, servers: list[ServerProc]
) -> None:
    figures = await run_failover(own_cluster, servers)
    assert figures["on_killed_master"] > 0
    assert figures["new_streams_after_s"] < 20


@pytest.mark.timeout(seconds=150)
async def test_a_master_killed_mid_stream_with_wait_loses_nothing(
    own_cluster: RedisCluster, servers: list[ServerProc]
) -> None:
    figures = await run_failover(own_cluster, servers, "--redis-wait-ms", "1000")
    assert figures["on_killed_master"] > 0
    assert figures["exact"] == figures["streams"], figures
    assert figures["new_streams_after_s"] < 20


async def read_after(url: str, last_event_id: str, count: int) -> list[dict]:
    """Resume over SSE and hang up after ``count`` events."""
    connection = SSEConnection(Endpoint(url + "/"))
    events: list[dict] = []
    try:
        async for _id, data in connection.events("/sse", last_event_id=last_event_id):
            events.append(json.loads(data))
            if len(events) == count:
                break
    finally:
        connection.abort()
    return events


def sse_status(url: str, last_event_id: str) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/sse", headers={"Last-Event-ID": last_event_id})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), {}
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


@pytest.mark.timeout(seconds=120)
async def test_a_resume_past_a_tail_lost_in_a_failover_is_told_so(
    own_cluster: RedisCluster, servers: list[ServerProc]
) -> None:
    pace = ("--tokens-per-second", "40", "--first-token-latency", "0", "--log-level", "warning")
    a = ServerProc("--store", own_cluster.url, *pace)
    servers.append(a)
    b = ServerProc("--store", own_cluster.url, *pace)
    servers.append(b)
    head = await read_some(a.url, "lost tail", 2000, 3)
    stream = head[0]["stream"]
    master = own_cluster.node_of_key(KEYS.stream(stream))
    replica = own_cluster.replica_of(master)
    # The replica stops taking the master's writes; clients read on from B.
    own_cluster.freeze(replica)
    own_cluster.cut_replication(master)
    seen = head + await read_after(b.url, f"{stream}:2", 20)
    assert [e["seq"] for e in seen] == list(range(len(seen)))
    # The master dies with the tail only it held, and so does the generator.
    own_cluster.kill(master)
    next(s for s in servers if s is a).kill()
    own_cluster.thaw(replica)
    await asyncio.get_running_loop().run_in_executor(None, own_cluster.wait_ok, 60.0)
    # B still mirrors the stream as it was: its readers are told the end is lost.
    record = await follow_sse([b.url], "", 0, record=Followed(events=list(seen)), deadline=30)
    assert record.seqs == list(range(len(record.events)))
    assert (record.last["type"], record.last["code"]) == ("error", "stream_truncated")
    # A process that never saw the stream answers a resume past the log's end so.
    c = ServerProc("--store", own_cluster.url, *pace)
    servers.append(c)
    last_id = f"{stream}:{seen[-1]['seq']}"
    status, body = await asyncio.get_running_loop().run_in_executor(
        None, sse_status, c.url, last_id
    )
    assert (status, body["error"]["code"]) == (410, "stream_truncated")
    async with ws_connect(c.url.replace("http://", "ws://") + "/ws") as socket:
        after = seen[-1]["seq"]
        await socket.send(json.dumps({"type": "resume", "stream": stream, "after": after}))
        error = json.loads(await socket.recv())
    assert (error["type"], error["code"]) == ("error", "stream_truncated")
