"""A chat's active answer on the Redis store (a real redis-server): two
concurrent starts leave one answer running, and an answer whose record cannot
be written is stopped (review item 7)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from support.redisutil import RedisServer, run_with_store

from server.config import Settings
from server.core.ui_chat_answers import CHAT_RECORD, start_answer
from server.store.redis import RedisStreamStore
from server.wire import errors
from server.wire.ui_message_request import parse_ui_chat

PREFIX = "ans:"


def chat(chat_id: str, text: str) -> Any:
    settings = Settings()
    message = {"role": "user", "parts": [{"type": "text", "text": text}]}
    body = {"id": chat_id, "messages": [message]}
    return parse_ui_chat(body, settings.limits)


def with_store(redis_server: RedisServer, test: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    run_with_store(redis_server, test, prefix=PREFIX, tokens_per_second=5)


async def live(store: RedisStreamStore) -> list[str]:
    await asyncio.sleep(0.3)  # a cancel ends its stream within the loop's next steps
    return [stream.id for stream in store.local.values() if not stream.ended]


async def deny_record_writes(store: RedisStreamStore) -> None:
    """Records may be read, not written (an ACL): every other key as before."""
    await store.redis.execute_command(
        "ACL", "SETUSER", "default", "resetkeys", f"~{PREFIX}[^d]*", f"%R~{PREFIX}d:*"
    )


def test_two_concurrent_starts_leave_the_later_answer_alone_running(
    redis_server: RedisServer,
) -> None:
    async def test(store: RedisStreamStore) -> None:
        first, second = await asyncio.gather(
            start_answer(store, chat("c1", "one")), start_answer(store, chat("c1", "two"))
        )
        record = await store.records.get(CHAT_RECORD, "c1")
        assert record is not None
        assert await live(store) == [record["stream"]]
        assert {first.stream.id, second.stream.id} >= {record["stream"]}

    with_store(redis_server, test)


def test_an_answer_whose_record_cannot_be_written_is_stopped(redis_server: RedisServer) -> None:
    async def test(store: RedisStreamStore) -> None:
        await deny_record_writes(store)
        with pytest.raises(errors.ProtocolError) as info:
            await start_answer(store, chat("c2", "hello"))
        assert info.value.code == "store_unavailable"
        assert await live(store) == []  # nothing generates that nobody can find

    with_store(redis_server, test)
