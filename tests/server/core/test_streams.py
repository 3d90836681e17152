"""Streams outlive connections: numbered logs, followers, cancel, idle-cancel, retention."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time

import pytest
from support.watched_backend import Watched

from server.backends.base import ChatRequest, Delta, Finish, close_pieces
from server.backends.synthetic import SyntheticBackend, synthetic_tokens
from server.config import Settings
from server.core.store import MemoryStreamStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def read_all(stream, after: int = -1) -> list[dict]:  # type: ignore[no-untyped-def]
    async with contextlib.aclosing(stream.follow(after)) as events:
        return [event async for event in events]


async def test_log_is_numbered_start_deltas_done() -> None:
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=0)), Settings()
    )
    stream = await store.create(ChatRequest.from_prompt("hi", 6))
    events = await read_all(stream)
    assert [e["seq"] for e in events] == list(range(8))
    assert [e["type"] for e in events] == ["start"] + ["delta"] * 6 + ["done"]
    assert all(e["stream"] == stream.id for e in events)
    assert stream.text() == "".join(synthetic_tokens("hi")[:6])
    assert store.get(stream.id) is stream
    await store.close()


async def test_an_ended_stream_lets_go_of_its_request_and_task() -> None:
    """Ended streams are retained for minutes for resumes: they keep their log,
    not the user's messages or the finished generation task."""
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=0)), Settings()
    )
    stream = await store.create(ChatRequest.from_prompt("forget me", 3))
    assert stream.request is not None and stream.generating is not None
    await read_all(stream)
    await asyncio.sleep(0)  # the task's done-callback runs on the next loop turn
    assert stream.ended and stream.request is None and stream.generating is None
    assert stream.cancel() is False
    assert stream.text() == "".join(synthetic_tokens("forget me")[:3])
    await store.close()


async def test_follow_after_seq_resumes_without_repeats() -> None:
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=0)), Settings()
    )
    stream = await store.create(ChatRequest.from_prompt("resume me", 10))
    whole = await read_all(stream)
    tail = await read_all(stream, after=4)
    assert tail == whole[5:]
    assert await read_all(stream, after=stream.last_seq) == []
    await store.close()


async def test_two_readers_see_the_same_events_live() -> None:
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=500, first_token_latency=0)),
        Settings(),
    )
    stream = await store.create(ChatRequest.from_prompt("share", 12))
    first, second = await asyncio.gather(read_all(stream), read_all(stream))
    assert first == second
    assert first[-1]["type"] == "done"
    await store.close()


async def test_cancel_before_generation_starts_still_ends_the_log() -> None:
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=20, first_token_latency=0)),
        Settings(),
    )
    stream = await store.create(ChatRequest.from_prompt("long", 200))
    assert stream.cancel() is True  # the task has not run yet
    events = await read_all(stream)
    assert [e["type"] for e in events] == ["start", "done"]
    assert events[-1]["finish_reason"] == "cancelled"
    assert stream.cancel() is False  # already ended
    await store.close()


async def test_cancel_mid_stream_stops_generation() -> None:
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=200, first_token_latency=0)),
        Settings(),
    )
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
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=0)), Settings()
    )
    stream = await store.create(ChatRequest.from_prompt("nobody listens", 8))
    await stream.wait_ended()
    assert stream.events[-1]["finish_reason"] == "length"
    assert stream.readers == 0
    await store.close()


async def test_unread_stream_is_cancelled_after_idle_timeout() -> None:
    clock = FakeClock()
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=5, first_token_latency=0)),
        Settings(idle_timeout=60),
        clock=clock,
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
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=5, first_token_latency=0)),
        Settings(idle_timeout=1),
        clock=clock,
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
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=0)),
        Settings(retention=300),
        clock=clock,
    )
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
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=0)), Settings()
    )
    ids = {(await store.create(ChatRequest.from_prompt("x", 1))).id for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) >= 22 for i in ids)
    await store.close()


class EndsAtOnce:
    """A backend whose completions end immediately: streams to retain, cheaply."""

    model = "instant"

    async def generate(self, request: ChatRequest):  # type: ignore[no-untyped-def]
        yield "x" * 100
        yield Finish(reason="stop")


class TimedPieces:
    """A backend that says when each piece became available (``piece_time``)."""

    model = "timed"

    def __init__(self) -> None:
        self.released = 0.0

    def piece_time(self) -> float:
        return self.released

    async def generate(self, request: ChatRequest):  # type: ignore[no-untyped-def]
        for index, piece in enumerate(["a", Delta(content="b", refusal="no")]):
            self.released = 1_700_000_000.25 + index
            yield piece
        yield Finish(reason="stop")


async def test_a_finished_generation_closes_the_backend_generator_itself() -> None:
    """Not left to asyncio's finaliser hook (a self-pipe write and a wake-up per
    stream): the generator is closed when the generation task ends, after the
    done event was appended."""
    backend = Watched()
    store = MemoryStreamStore.from_settings(backend, Settings())
    stream = await store.create(ChatRequest.from_prompt("close me", 4))
    task = stream.generating
    assert task is not None
    at_task_end: list[list[str]] = []
    task.add_done_callback(lambda _: at_task_end.append(list(backend.closed)))
    await task
    assert at_task_end == [["close me"]]
    assert [e["type"] for e in stream.events][-1] == "done"
    await store.close()


class FailsToClose(SyntheticBackend):
    """A backend whose clean-up raises after its Finish."""

    async def generate(self, request: ChatRequest):  # type: ignore[no-untyped-def]
        try:
            async for piece in super().generate(request):
                yield piece
        finally:
            raise RuntimeError("clean-up failed")


async def test_a_backend_failing_its_clean_up_leaves_the_ended_stream_as_it_was(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStreamStore.from_settings(
        FailsToClose.from_settings(Settings(tokens_per_second=0)), Settings()
    )
    stream = await store.create(ChatRequest.from_prompt("messy", 3))
    task = stream.generating
    assert task is not None
    await task  # the task itself ends cleanly
    assert [e["type"] for e in stream.events] == ["start", "delta", "delta", "delta", "done"]
    assert "failed closing a finished generation" in caplog.text
    await store.close()


async def test_close_pieces_closes_a_generator_and_ignores_other_iterators() -> None:
    closed = []

    async def pieces():  # type: ignore[no-untyped-def]
        try:
            yield "a"
            yield Finish(reason="stop")
        finally:
            closed.append(True)

    generator = pieces()
    assert await generator.__anext__() == "a"
    await close_pieces(generator)
    assert closed == [True]

    class Plain:
        def __aiter__(self) -> Plain:
            return self

        async def __anext__(self) -> str:
            raise StopAsyncIteration

    await close_pieces(Plain())  # no aclose: nothing to do


async def test_deltas_are_stamped_when_the_backend_released_them() -> None:
    """``t`` of a delta is the backend's ``piece_time``, text or not; other
    events, and backends without it, are stamped when the event is made."""
    store = MemoryStreamStore.from_settings(TimedPieces(), Settings())
    before = time.time()
    stream = await store.create(ChatRequest.from_prompt("when", 5))
    await stream.wait_ended()
    events = stream.events
    assert [e["type"] for e in events] == ["start", "delta", "delta", "done"]
    assert [e["t"] for e in events[1:3]] == [1_700_000_000.25, 1_700_000_001.25]
    assert before <= events[0]["t"] <= events[3]["t"] <= time.time()
    untimed = MemoryStreamStore.from_settings(EndsAtOnce(), Settings())
    other = await untimed.create(ChatRequest.from_prompt("now", 5))
    await other.wait_ended()
    assert before <= other.events[1]["t"] <= time.time()
    await store.close()
    await untimed.close()


async def test_log_reads_are_batches_of_the_ready_events() -> None:
    store = MemoryStreamStore.from_settings(
        SyntheticBackend.from_settings(Settings(tokens_per_second=0)), Settings()
    )
    stream = await store.create(ChatRequest.from_prompt("batch", 30))
    await stream.wait_ended()
    everything = stream.read(-1, max_bytes=1 << 30)
    assert len(everything) == 32 and stream.read(31) == []
    small = stream.read(-1, max_bytes=1)
    assert len(small) == 1  # always at least one event
    assert json.loads(stream.read(4)[0])["seq"] == 5  # strictly after
    # Text deltas are kept without the head every delta repeats: well under
    # half the bytes that are sent.
    assert stream.nbytes < 0.5 * sum(len(text) for text in everything)
    assert [json.loads(text) for text in everything] == stream.events
    assert all(text.startswith(b"{") and text.endswith(b"}") for text in everything)
    await store.close()


async def test_caps_forget_the_oldest_ended_streams_first() -> None:
    store = MemoryStreamStore.from_settings(EndsAtOnce(), Settings(max_retained_streams=10))
    streams = [await store.create(ChatRequest.from_prompt(str(i), 5)) for i in range(25)]
    for stream in streams:
        await stream.wait_ended()
    assert len(store) == 10
    assert [store.get(s.id) for s in streams[-10:]] == streams[-10:]
    assert store.get(streams[0].id) is None  # resumes answer stream_not_found
    await store.close()

    store = MemoryStreamStore.from_settings(EndsAtOnce(), Settings(max_retained_bytes=2000))
    streams = [await store.create(ChatRequest.from_prompt(str(i), 5)) for i in range(25)]
    for stream in streams:
        await stream.wait_ended()
    assert 0 < store.retained_bytes <= 2000
    assert store.get(streams[-1].id) is streams[-1] and store.get(streams[0].id) is None
    await store.close()


def lines_run(function, *args):  # type: ignore[no-untyped-def]
    """Run ``function(*args)`` and count the lines of server/streams.py it
    executes: an operation count, independent of the machine's speed."""
    count = 0

    def trace(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        if frame.f_code.co_filename.endswith(os.path.join("server", "streams.py")):
            if event == "line":
                count += 1
            return trace
        return None

    sys.settrace(trace)
    try:
        result = function(*args)
    finally:
        sys.settrace(None)
    return result, count


async def retained_store(retained: int, clock: FakeClock) -> MemoryStreamStore:
    store = MemoryStreamStore.from_settings(
        EndsAtOnce(),
        Settings(retention=300, idle_timeout=60, max_retained_streams=10**6),
        clock=clock,
    )
    for i in range(retained):
        store.create_now(ChatRequest.from_prompt(str(i), 5))
        if i % 1000 == 999:
            await asyncio.sleep(0)  # let them end
    while store.live_count():
        await asyncio.sleep(0)
    return store


async def test_create_and_reap_cost_the_same_at_100k_retained_streams_as_at_1k() -> None:
    costs = {}
    for retained in (1_000, 100_000):
        clock = FakeClock()
        store = await retained_store(retained, clock)
        assert len(store) == retained
        _, create_cost = lines_run(store.create_now, ChatRequest.from_prompt("new", 5))
        clock.now += 1  # nothing due yet: a pass over 0 expired streams
        _, reap_cost = lines_run(store.reap)
        assert store.last_reap_examined == 0
        clock.now += 300  # now every stream expires: the reaper pops them in order
        store.reap()
        costs[retained] = (create_cost, reap_cost)
        await store.close()
    (create_1k, reap_1k), (create_100k, reap_100k) = costs[1_000], costs[100_000]
    assert create_100k <= 2 * create_1k
    assert reap_100k <= 2 * reap_1k
