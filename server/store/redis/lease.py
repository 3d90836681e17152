"""This process's lease: ``{prefix}o:{token}``, renewed by a thread. Appends
are fenced by it; a process whose lease is gone (killed, stopped, wedged) has
its streams declared dead by whoever reads them (:mod:`.liveness`)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from redis.exceptions import RedisClusterException, RedisError

from .connection import DOWN, Target
from .keys import Keys
from .routes import Routes
from .stream import RedisStream

__all__ = ["LeaseHost", "LeaseKeeper", "ProcessLease"]

log = logging.getLogger("twinstream.redis")


class LeaseHost(Protocol):
    """What the lease (:class:`ProcessLease`, :class:`LeaseKeeper`) uses of its
    store (the Redis store has these members: it satisfies this structurally)."""

    @property
    def target(self) -> Target: ...

    @property
    def lease(self) -> float: ...

    @property
    def keys(self) -> Keys: ...

    @property
    def routes(self) -> Routes: ...

    @property
    def redis(self) -> Any: ...

    @property
    def bus(self) -> Any: ...

    @property
    def closed(self) -> bool: ...

    @property
    def local(self) -> Mapping[str, RedisStream]: ...

    @property
    def process_lease(self) -> ProcessLease: ...

    def outage(self, exc: BaseException) -> None: ...

    def abandon(self, stream: RedisStream) -> None: ...


class ProcessLease:
    """The token this process writes under, and what keeps it alive.

    The event loop proves it makes progress with a timer chain (:meth:`beat`);
    a :class:`LeaseKeeper` thread renews the lease while it does. A lease found
    lapsed means others may already have declared our streams dead, so
    :meth:`lost` stops them all and takes a new token for new streams."""

    def __init__(self, store: LeaseHost) -> None:
        self._store = store
        self.token = secrets.token_hex(8)
        self.keeper: LeaseKeeper | None = None

    @property
    def ttl_ms(self) -> int:
        return int(self._store.lease * 1000)

    async def take(self) -> None:
        """Set the lease and subscribe to our control channel (on (re)connect).
        On a cluster the token first gets its lease keys, one on each master."""
        store = self._store
        if "." not in self.token and store.target.cluster:
            self.token = _spread(self.token, store)
        await self._set_all(store.redis)
        await store.bus.subscribe(store.keys.control(self.token))

    async def _set_all(self, redis_client: Any) -> None:
        for key in self._store.keys.leases(self.token):
            await redis_client.set(key, self.token, px=self.ttl_ms)

    def keep(self) -> None:
        """Start the renewing thread and the loop's heartbeat (once)."""
        if self.keeper is None:
            self.keeper = LeaseKeeper(self._store, wedged_after=max(10.0, 3 * self._store.lease))
            self._beat()

    def stop(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()

    def _beat(self) -> None:
        """Tell the keeper the loop makes progress (a timer chain, until closed)."""
        if self.keeper is not None and not self._store.closed:
            self.keeper.beat()
            asyncio.get_running_loop().call_later(self._store.lease / 6, self._beat)

    def lost(self, token: str | None = None) -> None:
        """Every key of our lease lapsed (we stalled, or Redis lost them): set it
        again, under the same token. Streams that someone declared dead
        meanwhile are fenced by their own epoch (the append script refuses
        them and they end here with ``interrupted``); the others go on."""
        if token is not None and token != self.token:
            return  # about a token already replaced
        store = self._store
        log.warning("lease lapsed; taking it again (%d streams here)", len(store.local))
        redis_client = store.redis

        async def renew() -> None:
            if redis_client is None:
                return
            try:
                await self._set_all(redis_client)
            except DOWN as exc:
                store.outage(exc)

        asyncio.get_running_loop().create_task(renew())


def _spread(token: str, store: LeaseHost) -> str:
    """``token`` with the suffixes that put one lease key on each master."""
    routes, keys = store.routes, store.keys
    masters = set(routes.masters())
    chosen: dict[str, int] = {}
    for tail in range(4096):
        node = routes.node_of(keys.lease(f"{token}.{tail}"))
        chosen.setdefault(node, tail)
        if masters <= set(chosen):
            break
    return ".".join([token, *(str(tail) for tail in sorted(chosen.values()))])


class LeaseKeeper:
    """Renews a process's lease from a thread, on its own connection.

    A thread, not a task: a process whose event loop is merely overloaded
    (its callbacks run late, by a second or more) is alive and must keep its
    streams; only a process that is dead, stopped, or whose loop has made no
    progress for ``wedged_after`` seconds lets its lease lapse. The loop proves
    progress by calling :meth:`beat`.
    """

    def __init__(self, store: LeaseHost, wedged_after: float) -> None:
        self.store = store
        self.wedged_after = wedged_after
        self.last_beat = time.monotonic()
        self.loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twinstream-lease", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        store = self.store
        client: Any = None
        try:
            while not self._stop.wait(store.lease / 3):
                if time.monotonic() - self.last_beat > self.wedged_after:
                    continue  # the loop is wedged: let the lease lapse
                lease = store.process_lease
                token = lease.token
                if client is None:
                    try:
                        client = store.target.sync_client()
                    except (RedisError, RedisClusterException, OSError):
                        continue  # an outage: the loop notices it on its own calls
                kept = _renew(client, store.keys.leases(token), token, lease.ttl_ms)
                if kept is False and not self._stop.is_set():
                    self.loop.call_soon_threadsafe(lease.lost, token)
        finally:
            if client is not None:
                client.close()


def _renew(client: Any, keys: list[str], token: str, ttl_ms: int) -> bool | None:
    """Extend every lease key that still exists; restore one that a failover
    lost while another was kept. False: none was left (the lease lapsed);
    None: Redis could not be asked."""
    kept: list[bool] = []
    for key in keys:
        try:
            kept.append(bool(client.set(key, token, xx=True, px=ttl_ms)))
        except (RedisError, RedisClusterException, OSError):
            continue  # that key's node is down (failing over): the others vouch for us
    if not kept:
        return None
    if not any(kept):
        return False
    for key, was_kept in zip(keys, kept):
        if not was_kept:
            try:
                client.set(key, token, px=ttl_ms)
            except (RedisError, RedisClusterException, OSError):
                pass
    return True
