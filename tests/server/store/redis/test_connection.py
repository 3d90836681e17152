"""server.store.redis.connection's Link: the write batcher's own connection to a
node, against a real redis-server."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from support.redisutil import RedisServer

from server.store.redis.connection import Link


async def test_a_link_pipelines_on_one_connection_and_replaces_a_broken_one(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    other = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    link = Link(client)
    try:
        call = await link.send([("SET", "k", "v"), ("GET", "k"), ("INCR", "k"), ("CLIENT", "ID")])
        ok, value, error, first_id = await call.replies()
        assert (ok, value) == ("OK", "v")  # raw replies: the writer reads them itself
        assert isinstance(error, ResponseError)  # an error reply in its place, not raised
        again = await (await link.send([("CLIENT", "ID")])).replies()
        assert again == [first_id]  # the same connection, batch after batch
        # The server drops it (a restart, a proxy's timeout): the read fails ...
        await other.execute_command("CLIENT", "KILL", "ID", str(first_id))
        with pytest.raises(RedisConnectionError):
            await (await link.send([("CLIENT", "ID")])).replies()
        # ... and the next batch goes on a new connection.
        (new_id,) = await (await link.send([("CLIENT", "ID")])).replies()
        assert new_id != first_id
    finally:
        await link.drop()
        await client.aclose()
        await other.aclose()
