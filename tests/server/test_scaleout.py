"""Several real twinstream processes sharing streams through a real redis-server:
resume elsewhere, --processes, rolling restarts, a killed generator, Redis outages."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import psutil
import pytest
from support.cluster import Followed, ServerProc, follow_sse, follow_ws
from support.redisutil import RedisServer

from benchmarks.clients import Endpoint, SSEConnection
from server.backends.synthetic import synthetic_tokens


def expected(prompt: str, max_tokens: int) -> str:
    return "".join(synthetic_tokens(prompt)[:max_tokens])


def assert_exact(record: Followed, prompt: str, max_tokens: int) -> None:
    """Every event once, in order, ending with done, the text the model made."""
    assert record.seqs == list(range(len(record.events))), record.seqs
    assert record.last["type"] == "done", record.last
    assert record.text == expected(prompt, max_tokens)


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    started: list[ServerProc] = []
    yield started
    for server in started:
        server.close()


def start(servers: list[ServerProc], redis: RedisServer, *args: str, port: int = 0) -> ServerProc:
    server = ServerProc("--store", redis.url, "--log-level", "warning", *args, port=port)
    servers.append(server)
    return server


def post(url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def read_some(url: str, prompt: str, max_tokens: int, count: int) -> list[dict]:
    """Start over SSE and hang up after ``count`` events."""
    connection = SSEConnection(Endpoint(url + "/"))
    events: list[dict] = []
    try:
        path = f"/sse?prompt={prompt.replace(' ', '+')}&max_tokens={max_tokens}"
        async for _id, data in connection.events(path):
            events.append(json.loads(data))
            if len(events) == count:
                break
    finally:
        connection.abort()
    return events


async def test_start_on_a_drop_resume_on_b_both_transports(
    redis_server: RedisServer, servers: list[ServerProc]
) -> None:
    a = start(servers, redis_server, "--tokens-per-second", "100", "--first-token-latency", "0")
    b = start(servers, redis_server, "--tokens-per-second", "100", "--first-token-latency", "0")
    # SSE: the first response on A is cut after 5 events; the rest comes from B.
    head = await read_some(a.url, "resume on b", 60, 5)
    record = Followed(events=head)
    await follow_sse([b.url], "resume on b", 60, record=record)
    assert_exact(record, "resume on b", 60)
    assert record.hosts == {b.url}
    # WebSocket: started on A, the socket on A closed, resumed on B.
    ws_record = Followed()
    codes: list[int] = []

    follower = asyncio.ensure_future(follow_ws([a.url], "ws resume on b", 60, record=ws_record))
    while len(ws_record.events) < 5:
        await asyncio.sleep(0.005)
    follower.cancel()  # the client's socket to A goes away mid-stream
    with pytest.raises(asyncio.CancelledError):
        await follower
    await follow_ws([b.url], "ws resume on b", 60, record=ws_record, close_codes=codes)
    assert_exact(ws_record, "ws resume on b", 60)
    assert b.url in ws_record.hosts
    # Cancel from B a stream generated on A.
    slow = await read_some(a.url, "cancel from b", 200, 1)
    status, body = post(f"{b.url}/cancel?stream={slow[0]['stream']}")
    assert (status, body["cancelled"]) == (200, True)
    cancelled = await follow_sse([b.url], "", 0, record=Followed(events=slow))
    assert cancelled.last["type"] == "done" and cancelled.last["finish_reason"] == "cancelled"


async def test_two_processes_serve_one_port(
    redis_server: RedisServer, servers: list[ServerProc]
) -> None:
    server = start(
        servers,
        redis_server,
        "--processes",
        "2",
        "--tokens-per-second",
        "20",
        "--first-token-latency",
        "0",
    )
    for _ in range(100):
        workers = psutil.Process(server.pid).children()
        if len(workers) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(workers) == 2
    prompts = [f"two workers {i}" for i in range(16)]
    tasks = [asyncio.ensure_future(follow_sse([server.url], p, 30)) for p in prompts]
    await asyncio.sleep(0.8)  # every stream open and mid-way
    serving = [
        worker
        for worker in workers
        if any(
            c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port
            for c in worker.net_connections(kind="tcp")
        )
    ]
    records = await asyncio.gather(*tasks)
    assert len(serving) == 2, "both workers accept from the shared socket"
    for prompt, record in zip(prompts, records):
        assert_exact(record, prompt, 30)
    # A resume lands on either worker and finds the stream.
    head = await read_some(server.url, "either worker", 40, 3)
    record = await follow_sse([server.url], "", 0, record=Followed(events=head))
    assert_exact(record, "either worker", 40)
    server.terminate()
    assert server.wait(30) == 0


async def test_a_worker_that_dies_is_replaced(
    redis_server: RedisServer, servers: list[ServerProc]
) -> None:
    server = start(servers, redis_server, "--processes", "2", "--tokens-per-second", "0")
    for _ in range(100):
        workers = psutil.Process(server.pid).children()
        if len(workers) == 2:
            break
        await asyncio.sleep(0.05)
    workers[0].kill()
    for _ in range(200):
        now = {p.pid for p in psutil.Process(server.pid).children()}
        if len(now) == 2 and workers[0].pid not in now:
            break
        await asyncio.sleep(0.05)
    assert len(now) == 2 and workers[0].pid not in now
    assert "starting another" in server.stderr()
    record = await follow_sse([server.url], "after a worker died", 5)
    assert_exact(record, "after a worker died", 5)
    server.terminate()
    assert server.wait(30) == 0


async def test_rolling_restart_under_200_live_streams(
    redis_server: RedisServer, servers: list[ServerProc]
) -> None:
    pace = ("--tokens-per-second", "15", "--first-token-latency", "0", "--retry-ms", "50")
    a = start(servers, redis_server, *pace)
    b = start(servers, redis_server, *pace)
    urls = [a.url, b.url]
    prompts = [f"rolling {i}" for i in range(200)]
    codes: list[int] = []
    tasks = []
    for i, prompt in enumerate(prompts):
        follow = follow_sse if i % 2 else follow_ws
        kwargs = {} if i % 2 else {"close_codes": codes}
        tasks.append(asyncio.ensure_future(follow(urls, prompt, 60, first=i // 2 % 2, **kwargs)))
    await asyncio.sleep(1.0)
    # Restart A: it drains (its readers move to B, its generations finish into
    # Redis) while a new A takes its port.
    a.terminate()
    for _ in range(100):
        try:
            a2 = start(servers, redis_server, *pace, port=a.port)
            break
        except RuntimeError:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    b.terminate()  # then B, while its streams are still generating
    records = await asyncio.gather(*tasks)
    assert a.wait(30) == 0 and b.wait(30) == 0
    for prompt, record in zip(prompts, records):
        assert_exact(record, prompt, 60)
    moved = sum(1 for r in records if r.reconnects)
    assert moved >= 100, f"only {moved} streams were moved by the restarts"
    assert codes and set(codes) == {1012}
    a2.terminate()
    assert a2.wait(30) == 0


async def test_sigkill_of_the_generator_is_noticed_within_the_lease(
    redis_server: RedisServer, servers: list[ServerProc]
) -> None:
    a = start(servers, redis_server, "--tokens-per-second", "5", "--first-token-latency", "0")
    b = start(servers, redis_server)
    head = await read_some(a.url, "killed mid-way", 200, 2)
    record = Followed(events=head)
    follower = asyncio.ensure_future(follow_sse([b.url], "", 0, record=record, deadline=15))
    await asyncio.sleep(0.5)
    a.kill()
    killed = time.monotonic()
    await follower
    noticed = time.monotonic() - killed
    assert (record.last["type"], record.last["code"]) == ("error", "interrupted")
    assert record.seqs == list(range(len(record.events)))
    assert noticed < 8, f"interrupted after {noticed:.1f}s; the lease is 3s"


async def test_drain_deadline_ends_long_generations_with_server_shutdown(
    redis_server: RedisServer, servers: list[ServerProc]
) -> None:
    a = start(
        servers,
        redis_server,
        "--tokens-per-second",
        "10",
        "--first-token-latency",
        "0",
        "--drain-timeout",
        "1",
        "--retry-ms",
        "30",
    )
    b = start(servers, redis_server)
    codes: list[int] = []
    sse_task = asyncio.ensure_future(follow_sse([a.url, b.url], "long sse", 200))
    ws_task = asyncio.ensure_future(follow_ws([a.url, b.url], "long ws", 200, close_codes=codes))
    await asyncio.sleep(0.8)
    a.terminate()
    sse_record, ws_record = await asyncio.gather(sse_task, ws_task)
    assert a.wait(30) == 0
    assert codes == [1012]
    for record in (sse_record, ws_record):
        assert record.seqs == list(range(len(record.events)))
        assert (record.last["type"], record.last["code"]) == ("error", "server_shutdown")
        assert b.url in record.hosts and record.reconnects >= 1
        assert 8 <= len(record.events) - 2 < 200  # generated during the drain, not all


async def test_redis_stopped_and_restarted_mid_stream(servers: list[ServerProc]) -> None:
    redis_server = RedisServer(persistent=True).start()
    try:
        a = start(servers, redis_server, "--tokens-per-second", "20", "--first-token-latency", "0")
        record = Followed()
        follower = asyncio.ensure_future(follow_sse([a.url], "outage", 200, record=record))
        while len(record.events) < 3:
            await asyncio.sleep(0.01)
        redis_server.stop()
        await follower
        assert (record.last["type"], record.last["code"]) == ("error", "store_unavailable")
        assert record.seqs == list(range(len(record.events)))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{a.url}/sse?prompt=new&max_tokens=3", timeout=5)
        assert refused.value.code == 503
        assert json.loads(refused.value.read())["error"]["code"] == "store_unavailable"
        redis_server.start()
        for _ in range(100):  # it serves again by itself
            try:
                with urllib.request.urlopen(f"{a.url}/sse?prompt=back&max_tokens=3", timeout=5):
                    break
            except urllib.error.HTTPError:
                await asyncio.sleep(0.1)
        again = await follow_sse([a.url], "back again", 5)
        assert_exact(again, "back again", 5)
        # The stream that was live during the outage is resumable, ended.
        status = urllib.request.urlopen(
            urllib.request.Request(
                f"{a.url}/sse", headers={"Last-Event-ID": f"{record.stream}:{record.seqs[-1]}"}
            ),
            timeout=5,
        ).status
        assert status == 204
    finally:
        redis_server.close()


def test_memory_store_refuses_processes_and_redis_down_is_one_line() -> None:
    import subprocess
    import sys

    from support.redisutil import free_port

    refused = subprocess.run(
        [sys.executable, "-m", "server", "--processes", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "needs a shared store" in refused.stderr and "--store redis://" in refused.stderr
    url = f"redis://127.0.0.1:{free_port()}/0"
    down = subprocess.run(
        [sys.executable, "-m", "server", "--store", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 1
    assert down.stderr.startswith(f"error: cannot reach Redis at {url}: ")
    assert down.stderr.count("\n") == 1
