"""A cluster node failing is not an outage of the store: the other masters
serve on, the failed one's replica takes over. :class:`ClusterWatch` waits
for that (``failover_timeout`` at most) and only then, if some slot is still
not served, reports a store outage (every live stream here ends with
``store_unavailable``, as with one Redis that is gone)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster

from .connection import DOWN
from .routes import Routes

__all__ = ["ClusterWatch", "WatchHost"]

log = logging.getLogger("twinstream.redis")


class WatchHost(Protocol):
    @property
    def redis(self) -> Any: ...

    @property
    def routes(self) -> Routes: ...

    @property
    def failover_timeout(self) -> float: ...

    @property
    def available(self) -> bool: ...

    def outage(self, exc: BaseException) -> None: ...

    def served_again(self) -> None: ...


class ClusterWatch:
    def __init__(self, store: WatchHost) -> None:
        self._store = store
        self._task: asyncio.Task[None] | None = None
        self.giving_up = False  # True while the outage it reports is being handled
        self.failovers = 0
        self.last_failover_s: float | None = None  # seconds until every slot answered again

        self._settled_at = -1e9

    @property
    def watching(self) -> bool:
        return self._task is not None

    def settling(self, window: float) -> bool:
        """A failover is under way, or ended less than ``window`` s ago (leases
        that could not be renewed meanwhile are being taken again)."""
        return self._task is not None or time.monotonic() - self._settled_at < window

    def trouble(self, exc: BaseException) -> None:
        """A call to a node failed: watch the cluster until it serves every slot."""
        if self._task is None:
            log.warning("a Redis Cluster node failed (%s); waiting for its replica", exc)
            self._task = asyncio.get_running_loop().create_task(self._watch(exc))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _watch(self, exc: BaseException) -> None:
        store = self._store
        started = time.monotonic()
        try:
            while time.monotonic() - started < store.failover_timeout:
                await asyncio.sleep(0.25)
                if not store.available:
                    return
                if await self.healthy():
                    self.failovers += 1
                    self.last_failover_s = time.monotonic() - started
                    self._settled_at = time.monotonic()
                    log.warning(
                        "the Redis Cluster serves every slot again after %.1fs",
                        self.last_failover_s,
                    )
                    store.served_again()
                    return
            self.giving_up = True
            try:
                store.outage(exc)
            finally:
                self.giving_up = False
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def healthy(self) -> bool:
        """Every master of the current slot map answers."""
        store = self._store
        await store.routes.refresh(every=0)
        try:
            await store.redis.ping(target_nodes=RedisCluster.PRIMARIES)
        except DOWN:
            return False
        return True
