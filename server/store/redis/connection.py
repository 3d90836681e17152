"""Reaching Redis: one Redis (``redis://``) or a Redis Cluster
(``redis-cluster://HOST:PORT[,HOST:PORT...]``), the clients every part of the
store uses, what counts as an outage, and the one-line check ``python -m
server`` runs before it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...wire import errors

__all__ = [
    "CLUSTER_SCHEME",
    "DOWN",
    "StoreUnavailable",
    "Target",
    "UNAVAILABLE_MESSAGE",
    "WRITE_TIMEOUT",
    "Call",
    "Link",
    "close_client",
    "connect_check",
]

UNAVAILABLE_MESSAGE = "the stream store (Redis) is unavailable; retry shortly"
CLUSTER_SCHEME = "redis-cluster"
#: Failures that mean "Redis is unreachable" (an outage), as opposed to a bad
#: reply: no connection, no answer, or a cluster that cannot serve the slot now
#: (a master down and not yet replaced, a slot moving).
DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterDownError,
    TryAgainError,
    RedisClusterException,
)

# Fail fast rather than retry with backoff inside redis-py: the store has its
# own recovery loop, and a reader should learn of an outage in a second, not
# after redis-py's default retries. A Redis that is down or restarting fails at
# once (refused, reset); the socket timeout only bounds a hung one. Generous: on
# a machine overloaded by other work a reply can be seconds late without Redis
# being gone.
_SOCKET: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 15.0,
    "decode_responses": True,
}


class StoreUnavailable(RuntimeError):
    """Redis cannot be reached (raised by :func:`connect_check`)."""


def unavailable() -> errors.ProtocolError:
    """What a request is answered while Redis is unreachable (HTTP 503)."""
    return errors.ProtocolError("store_unavailable", UNAVAILABLE_MESSAGE, 503)


@dataclass(frozen=True)
class Target:
    """Where the store lives, parsed from ``--store``: one Redis or a cluster
    (any of its nodes; the others are discovered)."""

    url: str

    @property
    def cluster(self) -> bool:
        return urlsplit(self.url).scheme == CLUSTER_SCHEME

    @property
    def publish(self) -> str:
        """The command scripts publish with: sharded on a cluster (the message
        stays on the slot's shard instead of crossing every node's bus)."""
        return "SPUBLISH" if self.cluster else "PUBLISH"

    def nodes(self) -> list[tuple[str, int]]:
        """A cluster's seed nodes, as given."""
        netloc = urlsplit(self.url).netloc.rpartition("@")[2]
        out = []
        for part in netloc.split(","):
            host, _, port = part.strip().rpartition(":")
            out.append((host.strip("[]") or "127.0.0.1", int(port or 6379)))
        return out

    def _credentials(self) -> dict[str, Any]:
        parts = urlsplit(self.url)
        found: dict[str, Any] = {}
        if parts.username:
            found["username"] = unquote(parts.username)
        if parts.password:
            found["password"] = unquote(parts.password)
        return found

    def slot(self, key: str) -> int:
        """The hash slot of a key (0 for one Redis: everything is together)."""
        return key_slot(key.encode()) if self.cluster else 0

    def client(self) -> Any:
        """The asyncio client the store runs on."""
        if self.cluster:
            return aiocluster.RedisCluster(
                startup_nodes=[aiocluster.ClusterNode(h, p) for h, p in self.nodes()],
                max_connections=32,
                require_full_coverage=False,  # the slots that are up keep serving
                **self._credentials(),
                **_SOCKET,
            )
        # A blocking pool: a burst of opens waits for a connection instead of
        # failing (or opening hundreds).
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=32,
            timeout=15.0,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            **_SOCKET,
        )
        return aioredis.Redis(connection_pool=pool)

    def writer_client(self, node: str) -> aioredis.Redis:
        """A plain client for the write batcher's calls to ``node`` (``HOST:PORT``
        on a cluster; anything on one Redis). No socket timeout of its own: the
        writer bounds each call (:meth:`Link.send`, :meth:`Call.replies`), and
        redis-py wraps each write of a connection with a socket timeout in
        ``asyncio.wait_for``: a task, and a loop iteration, per call."""
        untimed = {**_SOCKET, "socket_timeout": None}
        if not self.cluster:
            return aioredis.Redis.from_url(
                self.url, retry=Retry(NoBackoff(), 0), health_check_interval=0, **untimed
            )
        host, _, port = node.rpartition(":")
        return aioredis.Redis(
            host=host.strip("[]"),
            port=int(port),
            retry=Retry(NoBackoff(), 0),
            **self._credentials(),
            **untimed,
        )

    def node_client(self, host: str, port: int) -> aioredis.Redis:
        """A plain client to one node of a cluster (its sharded pub/sub)."""
        return aioredis.Redis(
            host=host, port=port, retry=Retry(NoBackoff(), 0), **self._credentials(), **_SOCKET
        )

    def sync_client(self) -> Any:
        """A blocking client with short timeouts (the lease's thread)."""
        quick: dict[str, Any] = {
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
            "decode_responses": True,
        }
        if self.cluster:
            return redis.cluster.RedisCluster(
                startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in self.nodes()],
                require_full_coverage=False,
                **self._credentials(),
                **quick,
            )
        return redis.Redis.from_url(self.url, **quick)


#: Seconds a batch's call to one node may take (the writer's clients have no
#: socket timeout: :meth:`Target.writer_client`).
WRITE_TIMEOUT: float = _SOCKET["socket_timeout"]


class Link:
    """The write batcher's own connection to one node, outside the client's pool.
    One flush at a time writes to a node, so one connection suffices, and a batch
    skips what taking a connection from the pool costs each time (its lock, its
    bookkeeping, and a read on the socket to check nothing is left on it). Made
    on first use; a connection on which anything went wrong is closed and the
    next batch makes a new one."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._connection: Any = None

    async def send(self, commands: list[tuple[Any, ...]]) -> Call:
        """Write ``commands`` at once (a pipeline, without redis-py's per-call
        bookkeeping); read them with :meth:`Call.replies`. Unbounded: the caller
        sets the deadline."""
        connection = self._connection
        if connection is None:
            connection = self._connection = self._client.connection_pool.make_connection()
        try:
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
        except BaseException:
            await self.drop()
            raise
        return Call(self, connection, len(commands))

    async def drop(self) -> None:
        """Close the connection (replies may be left on it); the next send makes one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)


class Call:
    """Commands written on a :class:`Link`'s connection, their replies not read yet."""

    def __init__(self, link: Link, connection: Any, count: int) -> None:
        self._link = link
        self._connection = connection
        self._count = count

    async def replies(self) -> list[Any]:
        """Each reply in turn, an error reply (``ResponseError``) in its place, as
        a pipeline with ``raise_on_error=False`` gives. If reading fails, the
        connection is closed (replies may be left on it)."""
        connection = self._connection
        try:
            replies: list[Any] = []
            for _ in range(self._count):
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            await self._link.drop()
            raise


async def connect_check(url: str) -> None:
    """PING Redis once; StoreUnavailable with a one-line reason if it does not answer."""
    try:
        redis_client = Target(url).client()
        await redis_client.ping()
    except (RedisError, RedisClusterException, OSError) as exc:  # unreachable, refused...
        raise StoreUnavailable(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        if "redis_client" in locals():
            await close_client(redis_client)


async def close_client(redis_client: Any) -> None:
    """Close a client made by :class:`Target` and its connections."""
    if isinstance(redis_client, aiocluster.RedisCluster):
        await redis_client.aclose()
    else:
        await redis_client.aclose(close_connection_pool=True)
