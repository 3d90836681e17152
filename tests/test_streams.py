"""Streams outlive connections: numbered logs, followers, cancel, idle-cancel, retention."""

from __future__ import annotations

import asyncio
import contextlib

from server.backends.base import ChatRequest
from server.backends.synthetic import SyntheticBackend, synthetic_tokens
from server.streams import MemoryStreamStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def read_all(stream, after: int = -1) -> list[dict]:  # type: ignore[no-untyped-def]
    async with contextlib.aclosing(stream.follow(after)) as events:
        return [event async for event in events]


async def test_log_is_numbered_start_deltas_done() -> None:
    store = MemoryStreamStore(SyntheticBackend(tokens_per_second=0))
    stream = await store.create(ChatRequest.from_prompt("hi", 6))
    events = await read_all(stream)
    assert [e["seq"] for e in events] == list(range(8))
    assert [e["type"] for e in events] == ["start"] + ["delta"] * 6 + ["done"]
    assert all(e["stream"] == stream.id for e in events)
    assert stream.text() == "".join(synthetic_tokens("hi")[:6])
    assert store.get(stream.id) is stream
    await store.close()


async def test_follow_after_seq_resumes_without_repeats() -> None:
    store = MemoryStreamStore(SyntheticBackend(tokens_per_second=0))
    stream = await store.create(ChatRequest.from_prompt("resume me", 10))
    whole = await read_all(stream)
    tail = await read_all(stream, after=4)
    assert tail == whole[5:]
    assert await read_all(stream, after=stream.last_seq) == []
    await store.close()


async def test_two_readers_see_the_same_events_live() -> None:
    store = MemoryStreamStore(SyntheticBackend(tokens_per_second=500, first_token_latency=0))
    stream = await store.create(ChatRequest.from_prompt("share", 12))
    first, second = await asyncio.gather(read_all(stream), read_all(stream))
    assert first == second
    assert first[-1]["type"] == "done"
    await store.close()


async def test_cancel_before_generation_starts_still_ends_the_log() -> None:
    store = MemoryStreamStore(SyntheticBackend(tokens_per_second=20, first_token_latency=0))
    stream = await store.create(ChatRequest.from_prompt("long", 200))
    assert stream.cancel() is True  # the task has not run yet
    events = await read_all(stream)
    assert [e["type"] for e in events] == ["start", "done"]
    assert events[-1]["finish_reason"] == "cancelled"
    assert stream.cancel() is False  # already ended
    await store.close()


async def test_cancel_mid_stream_stops_generation() -> None:
    store = MemoryStreamStore(SyntheticBackend(tokens_per_second=200, first_token_latency=0))
    stream = await store.create(ChatRequest.from_prompt("long", 200))
    async with contextlib.aclosing(stream.follow()) as events:
        async for event in events:
            assert event is not None
            if event["seq"] == 3:
                stream.cancel()  # following goes on until the terminal event
    assert stream.ended
    assert stream.events[-1]["finish_reason"] == "cancelled"
    deltas = stream.last_seq - 1
    assert 3 <= deltas < len(synthetic_tokens("long"))
    await asyncio.sleep(0.05)  # generation really stopped: nothing is appended any more
    assert stream.last_seq - 1 == deltas
    await store.close()


async def test_generation_goes_on_without_readers() -> None:
    store = MemoryStreamStore(SyntheticBackend(tokens_per_second=0))
    stream = await store.create(ChatRequest.from_prompt("nobody listens", 8))
    await stream.wait_ended()
    assert stream.events[-1]["finish_reason"] == "length"
    assert stream.readers == 0
    await store.close()


async def test_unread_stream_is_cancelled_after_idle_timeout() -> None:
    clock = FakeClock()
    store = MemoryStreamStore(
        SyntheticBackend(tokens_per_second=5, first_token_latency=0), idle_timeout=60, clock=clock
    )
    stream = await store.create(ChatRequest.from_prompt("idle", 100))
    clock.now += 59
    store.reap()
    assert not stream.ended
    clock.now += 2
    store.reap()
    await stream.wait_ended()
    assert stream.events[-1]["finish_reason"] == "cancelled"
    await store.close()


async def test_a_reader_keeps_the_stream_alive() -> None:
    clock = FakeClock()
    store = MemoryStreamStore(
        SyntheticBackend(tokens_per_second=5, first_token_latency=0), idle_timeout=1, clock=clock
    )
    stream = await store.create(ChatRequest.from_prompt("watched", 100))
    follower = stream.follow()
    assert (await follower.__anext__())["type"] == "start"
    clock.now += 1000
    store.reap()
    assert not stream.ended  # someone is reading
    await follower.aclose()
    clock.now += 1000
    store.reap()
    await stream.wait_ended()
    assert stream.events[-1]["finish_reason"] == "cancelled"
    await store.close()


async def test_ended_streams_are_forgotten_after_retention() -> None:
    clock = FakeClock()
    store = MemoryStreamStore(SyntheticBackend(tokens_per_second=0), retention=300, clock=clock)
    stream = await store.create(ChatRequest.from_prompt("bye", 3))
    await stream.wait_ended()
    clock.now += 299
    store.reap()
    assert store.get(stream.id) is stream
    clock.now += 2
    store.reap()
    assert store.get(stream.id) is None
    assert len(store) == 0
    await store.close()


async def test_stream_ids_are_unguessable_and_distinct() -> None:
    store = MemoryStreamStore(SyntheticBackend(tokens_per_second=0))
    ids = {(await store.create(ChatRequest.from_prompt("x", 1))).id for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) >= 22 for i in ids)
    await store.close()
