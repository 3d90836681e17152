"""Which node holds a key, and a plain client to each node.

One Redis is one node. On a cluster the slot map is redis-py's
(``RedisCluster``'s nodes manager, refreshed on ``MOVED`` and by
:meth:`Routes.refresh` after a node fails); the writes go on plain
per-node clients so that one node's batch is one pipeline on one connection
(its script calls, and the ``WAIT`` that must follow them on that same
connection), and one node failing does not fail the others' batches. One Redis
gets such a client too: the writer's clients have no socket timeout of their
own (the writer bounds each call)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from .connection import DOWN, Link, Target

__all__ = ["ONE_NODE", "Routes"]

ONE_NODE = "redis"


class Routes:
    def __init__(self, target: Target, redis_client: Any) -> None:
        self.target = target
        self.redis = redis_client
        self._clients: dict[str, Any] = {}
        self._links: dict[str, Link] = {}
        self._refreshed = 0.0
        self._alone: dict[str, float] = {}  # node -> until when it is known to have no replica

    def node_of(self, key: str) -> str:
        """The name of the master that holds ``key`` (as far as the slot map knows)."""
        if not self.target.cluster:
            return ONE_NODE
        return str(self.redis.get_node_from_key(key).name)

    def client(self, node: str) -> Any:
        """The write batcher's plain asyncio client of ``node`` (its own, one
        Redis included: :meth:`Target.writer_client`)."""
        client = self._clients.get(node)
        if client is None:
            client = self._clients[node] = self.target.writer_client(node)
        return client

    def link(self, node: str) -> Link:
        """The write batcher's own connection to ``node`` (on its client)."""
        link = self._links.get(node)
        if link is None:
            link = self._links[node] = Link(self.client(node))
        return link

    def alone(self, node: str) -> bool:
        """Whether ``node`` was found without a replica in the last second."""
        return self._alone.get(node, 0.0) > time.monotonic()

    def mark_alone(self, node: str) -> None:
        self._alone[node] = time.monotonic() + 1.0

    def masters(self) -> list[str]:
        if not self.target.cluster:
            return [ONE_NODE]
        return [str(node.name) for node in self.redis.get_primaries()]

    async def refresh(self, every: float = 0.2) -> None:
        """Ask the cluster for its slot map again (at most every ``every`` s)."""
        if not self.target.cluster or time.monotonic() - self._refreshed < every:
            return
        self._refreshed = time.monotonic()
        with contextlib.suppress(*DOWN):
            await self.redis.nodes_manager.initialize()

    async def forget(self, node: str) -> None:
        """Drop a node's client (it failed: a new connection is made when needed)."""
        link, client = self._links.pop(node, None), self._clients.pop(node, None)
        with contextlib.suppress(Exception):
            if link is not None:
                await link.drop()
            if client is not None:
                await client.aclose(close_connection_pool=True)

    async def close(self) -> None:
        for node in {*self._clients, *self._links}:
            await self.forget(node)
