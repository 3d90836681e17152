"""Reaching Redis: the client every part of the store uses, what counts as an
outage, and the one-line check ``python -m server`` runs before it serves."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...wire import errors

__all__ = ["DOWN", "StoreUnavailable", "UNAVAILABLE_MESSAGE", "client", "connect_check"]

UNAVAILABLE_MESSAGE = "the stream store (Redis) is unavailable; retry shortly"
#: Failures that mean "Redis is unreachable" (an outage), as opposed to a bad reply.
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class StoreUnavailable(RuntimeError):
    """Redis cannot be reached (raised by :func:`connect_check`)."""


def unavailable() -> errors.ProtocolError:
    """What a request is answered while Redis is unreachable (HTTP 503)."""
    return errors.ProtocolError("store_unavailable", UNAVAILABLE_MESSAGE, 503)


def client(url: str) -> aioredis.Redis:
    # Fail fast rather than retry with backoff inside redis-py: the store has
    # its own recovery loop, and a reader should learn of an outage in a
    # second, not after redis-py's default retries. A blocking pool: a burst
    # of opens waits for a connection instead of failing (or opening hundreds).
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=32,
        timeout=15.0,
        decode_responses=True,
        socket_connect_timeout=2.0,
        # A Redis that is down or restarting fails at once (refused, reset);
        # this only bounds a hung one. Generous: on a machine overloaded by
        # other work a reply can be seconds late without Redis being gone.
        socket_timeout=15.0,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return aioredis.Redis(connection_pool=pool)


async def connect_check(url: str) -> None:
    """PING Redis once; StoreUnavailable with a one-line reason if it does not answer."""
    redis_client = client(url)
    try:
        await redis_client.ping()
    except (RedisError, OSError) as exc:  # unreachable, or e.g. a password it refuses
        raise StoreUnavailable(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        await redis_client.aclose(close_connection_pool=True)
