"""The periodic tick: is Redis there, are the owners of the streams mirrored
here alive, are this process's streams still read anywhere, and what may be
forgotten. Every ``lease / 3`` seconds, in one pipelined round trip."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ...wire import events
from .connection import DOWN
from .failover import ClusterWatch
from .keys import Keys
from .mirror import Mirrors, RedisMirror
from .scripts import Scripts
from .stream import INTERRUPTED_MESSAGE, RedisStream

__all__ = ["INTERRUPTED_MESSAGE", "Liveness", "LivenessHost", "PendingWrites"]

log = logging.getLogger("twinstream.redis")


class PendingWrites(Protocol):
    """Which streams still have events waiting to be written (the store's WriteBatcher)."""

    def __contains__(self, stream_id: str) -> bool: ...


class LivenessHost(Protocol):
    """What the tick (:class:`Liveness`) uses of its store (the Redis store
    has these members: it satisfies this structurally)."""

    @property
    def lease(self) -> float: ...

    @property
    def idle_timeout(self) -> float: ...

    @property
    def mirror_linger(self) -> float: ...

    @property
    def retention(self) -> float: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def keys(self) -> Keys: ...

    @property
    def redis(self) -> Any: ...

    @property
    def scripts(self) -> Scripts | None: ...

    @property
    def token(self) -> str: ...

    @property
    def local(self) -> dict[str, RedisStream]: ...

    @property
    def mirrors(self) -> Mirrors: ...

    @property
    def batcher(self) -> PendingWrites: ...

    @property
    def cluster_watch(self) -> ClusterWatch: ...

    @property
    def available(self) -> bool: ...

    def outage(self, exc: BaseException) -> None: ...


class Liveness:
    """Checks the store runs on a timer (:meth:`run`), and the owner checks
    an open of a live stream makes (:meth:`check_owner`)."""

    def __init__(self, store: LivenessHost) -> None:
        self._store = store
        # owner -> when its lease was first seen gone: declared dead one tick
        # later if still gone (a lease a failover could not renew is being
        # taken again meanwhile)
        self._suspects: dict[str, float] = {}

    async def run(self) -> None:
        """Tick until an outage (which ends the task: recovery starts a new one);
        a cluster node failing does not stop it."""
        interval = self._store.lease / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except DOWN as exc:
                self._store.outage(exc)
                if not self._store.available:
                    return
                # A cluster node failed (the store watches its failover): tick on.

    async def tick(self) -> None:
        """Check Redis, mark streams read here, declare dead the streams whose
        owner's lease is gone, cancel unread local streams, forget old mirrors.
        (The lease itself is renewed by the LeaseKeeper thread.)"""
        store = self._store
        if store.redis is None:
            return
        now = store.clock()
        live_mirrors = [m for m in store.mirrors.values() if not m.ended and not m.loading]
        owners = sorted({m.owner for m in live_mirrors})
        idle = self._unread_here(now)
        alive, read_elsewhere = await self._probe(live_mirrors, owners, idle)
        await self._end_orphans(live_mirrors, alive)
        self._cancel_unread(idle, read_elsewhere, now)
        self._forget_ended_local(now)
        await store.mirrors.forget_unread(now)

    def _unread_here(self, now: float) -> list[RedisStream]:
        """Live local streams nobody here has read for ``idle_timeout``."""
        store = self._store
        return [
            s
            for s in store.local.values()
            if not s.ended and not s.followers and now - s.last_read_at >= store.idle_timeout
        ]

    async def _probe(
        self, live_mirrors: list[RedisMirror], owners: list[str], idle: list[RedisStream]
    ) -> tuple[dict[str, Any], list[Any]]:
        """One round trip (per node): is Redis there; mark the mirrors read here
        as read; ask which owners' leases exist and which idle local streams
        are read elsewhere."""
        store = self._store
        keys = store.keys
        read_ttl = int(max(store.idle_timeout, store.lease) * 1000)
        async with store.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.lease(store.token))  # is Redis there (a cluster pipeline has no PING)
            for mirror in live_mirrors:
                if mirror.followers:
                    pipe.set(keys.read(mirror.id), "1", px=read_ttl)
            for owner in owners:
                for lease in keys.leases(owner):
                    pipe.exists(lease)
            for stream in idle:
                pipe.exists(keys.read(stream.id))
            replies = await pipe.execute()
        split = len(replies) - len(idle)
        count = sum(len(keys.leases(owner)) for owner in owners)
        leases = iter(replies[split - count : split])
        # An owner is alive while any of its lease keys is (one per master on a cluster).
        alive = {owner: any([bool(next(leases)) for _ in keys.leases(owner)]) for owner in owners}
        return alive, replies[split:]

    async def _end_orphans(self, live_mirrors: list[RedisMirror], alive: dict[str, Any]) -> None:
        store = self._store
        now = store.clock()
        if store.cluster_watch.settling(store.lease):
            self._suspects.clear()
            return
        for owner, live in alive.items():
            if live:
                self._suspects.pop(owner, None)
            else:
                self._suspects.setdefault(owner, now)
        for mirror in live_mirrors:
            since = self._suspects.get(mirror.owner)
            if since is not None and now - since >= store.lease / 4:
                await self.declare_dead(mirror)
        for owner in [o for o in self._suspects if o not in alive]:
            del self._suspects[owner]

    def _cancel_unread(
        self, idle: list[RedisStream], read_elsewhere: list[Any], now: float
    ) -> None:
        idle_timeout = self._store.idle_timeout
        for stream, read in zip(idle, read_elsewhere):
            if read:
                stream.last_read_at = now
            else:
                log.info("cancelling stream %s: unread for %.0fs", stream.id, idle_timeout)
                stream.cancel()

    def _forget_ended_local(self, now: float) -> None:
        # Ended streams are served from Redis like any other once nobody here reads them.
        store = self._store
        for stream_id, stream in list(store.local.items()):
            if stream.ended and not stream.followers and stream_id not in store.batcher:
                if now - stream.last_read_at >= store.mirror_linger:
                    del store.local[stream_id]

    async def check_owner(self, mirror: RedisMirror) -> None:
        """Declare the stream dead now if its owner's lease is already gone."""
        store = self._store
        if store.cluster_watch.settling(store.lease):
            return  # the next ticks decide
        for lease in store.keys.leases(mirror.owner):
            if await store.redis.exists(lease):
                return
        await self.declare_dead(mirror)

    async def declare_dead(self, mirror: RedisMirror) -> None:
        """The owner's lease is gone: end the stream in Redis with ``interrupted``
        (exactly once, whoever notices first); the mirror gets it by pub/sub."""
        store = self._store
        keys = store.keys
        assert store.redis is not None and store.scripts is not None
        for _ in range(5):
            last = await store.redis.hget(keys.meta(mirror.id), "last")
            if last is None:
                return
            seq = int(last) + 1
            text = events.dumps(
                events.error_event(
                    mirror.id, seq, "interrupted", INTERRUPTED_MESSAGE, t=round(time.time(), 6)
                )
            )
            result = await store.scripts.declare_dead(
                keys=[keys.stream(mirror.id), keys.meta(mirror.id)],
                args=[
                    mirror.owner,
                    seq,
                    text,
                    keys.channel(mirror.id),
                    int(store.retention * 1000),
                    store.scripts.publish,
                ],
            )
            if result != -3:  # -3: the owner appended meanwhile; try the next seq
                break
        if not mirror.ended and mirror.last_seq < seq:
            await store.mirrors.refill(mirror)
