"""The resume catch-up (responses_state.catch_up) and the frames that follow it,
for every ``starting_after`` of a log with text, a refusal and tool calls:
exactly the events after it, each once. No server: a StreamLog and the frames."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from support.redisutil import RedisServer, run_with_store

from server.core.log import StreamLog
from server.core.responses_state import KIND, ResponsesOptions, catch_up, start_response
from server.handlers.responses import ResponsesFrames
from server.wire import errors
from server.wire import events as wire
from server.wire.limits import Limits
from server.wire.responses_events import ResponseView

S = "AbCdEfGh12345678abcdef"
BASE = {"id": "resp_" + S, "created_at": 0, "model": "m"}
CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}


def make_log(ended: bool) -> StreamLog:
    log = StreamLog(S, "m")
    log.append(wire.start_event(S, "m"))
    pieces: list[dict[str, Any]] = [
        {"content": "Hel"},
        {"content": "lo"},
        {"content": "", "refusal": "no"},
        {"content": " again"},
        {"content": "", "tool_calls": [CALL]},
        {"content": "", "tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
    ]
    for piece in pieces:
        content = piece.pop("content")
        log.append(wire.delta_event(S, log.last_seq + 1, content, **piece))
    if ended:
        log.append(wire.done_event(S, log.last_seq + 1, "tool_calls"))
    return log


def parse(sse: bytes) -> list[dict[str, Any]]:
    return [json.loads(data) for data in re.findall(rb"^data: (.*)$", sse, re.M)]


def everything(log: StreamLog) -> list[dict[str, Any]]:
    frames = ResponsesFrames(ResponseView(BASE, S))
    return parse(frames(0, log.read(-1, 1 << 30)))


@pytest.mark.parametrize("ended", [True, False])
def test_every_starting_after_resumes_exactly(ended: bool) -> None:
    log = make_log(ended)
    full = everything(log)
    assert [event["sequence_number"] for event in full] == list(range(len(full)))
    for after in range(-1, len(full)):
        view = ResponseView(BASE, S)
        seq, pending = catch_up(view, log, after)
        frame = ResponsesFrames(view)
        if pending:  # as _Streaming.follow relays it
            frame, seq = ResponsesFrames(view, pending, replay=seq), seq - 1
        rest = parse(frame(seq + 1, log.read(seq, 1 << 30))) if seq < log.last_seq else []
        assert rest == full[after + 1 :], after


def test_starting_after_beyond_what_was_made_is_refused() -> None:
    for ended in (True, False):
        log = make_log(ended)
        total = len(everything(log))
        with pytest.raises(errors.ProtocolError) as info:
            catch_up(ResponseView(BASE, S), log, total)
        assert info.value.param == "starting_after"


# --- the record's life on the Redis store (a real redis-server) ----------------------------

PREFIX = "rs:"


def with_store(redis_server: RedisServer, test: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    run_with_store(redis_server, test, prefix=PREFIX, tokens_per_second=200)


OPTIONS = ResponsesOptions(ttl=30.0, live_ttl=3630.0)
LIMITS = Limits(max_prompt_bytes=32768)


def test_at_its_end_a_records_lifetime_becomes_the_retention(redis_server: Any) -> None:
    async def test(store: Any) -> None:
        started = await start_response(store, LIMITS, OPTIONS, {"input": "hi"})
        key = store.keys.record(KIND, started.stream.id)
        assert 3_600_000 < await store.redis.pttl(key) <= 3_630_000
        await started.stream.wait_ended()
        await asyncio.sleep(0.2)
        assert 0 < await store.redis.pttl(key) <= 30_000
        assert await store.records.get(KIND, started.stream.id) == started.record

    with_store(redis_server, test)


def test_a_delete_as_the_response_ends_stays_deleted(redis_server: Any) -> None:
    async def test(store: Any) -> None:
        started = await start_response(store, LIMITS, OPTIONS, {"input": "hi"})
        stream_id = started.stream.id
        deleting: list[asyncio.Task[bool]] = []
        # DELETE /v1/responses/{id} arriving as the stream ends (the refresh runs then too)
        started.stream.ended_future().add_done_callback(
            lambda _: deleting.append(asyncio.ensure_future(store.records.delete(KIND, stream_id)))
        )
        await started.stream.wait_ended()
        await asyncio.sleep(0.3)
        assert deleting and deleting[0].done()
        assert await store.records.get(KIND, stream_id) is None

    with_store(redis_server, test)


def test_a_response_whose_record_cannot_be_written_is_stopped(redis_server: Any) -> None:
    async def test(store: Any) -> None:
        await store.redis.execute_command(  # records readable, not writable (an ACL)
            "ACL", "SETUSER", "default", "resetkeys", f"~{PREFIX}[^d]*", f"%R~{PREFIX}d:*"
        )
        body = {"input": "hi", "max_output_tokens": 4000}
        with pytest.raises(errors.ProtocolError) as info:
            await start_response(store, LIMITS, OPTIONS, body)
        assert info.value.code == "store_unavailable"
        await asyncio.sleep(0.3)
        assert [stream for stream in store.local.values() if not stream.ended] == []

    with_store(redis_server, test)
