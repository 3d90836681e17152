"""Streams kept in Redis, one Redis or a Redis Cluster, so that several
processes and machines share them: the store/log seam of ``server/core/``,
backed by redis-py's asyncio clients. The parts, one module each, and what
each failure does: ``docs/architecture.md`` (the Redis store; deploying on a
cluster). Redis lost (an outage): every live stream here ends with
``error``/``store_unavailable``, ``create`` answers 503; once Redis answers
again the store serves again by itself. A cluster node failing is watched
(:mod:`.failover`): its streams wait for its replica, the rest go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ...backends.base import Backend, ChatRequest
from ...core.store import SHUTDOWN_MESSAGE
from ...wire import errors
from .batcher import WriteBatcher
from .bus import Bus
from .connection import (
    DOWN,
    UNAVAILABLE_MESSAGE,
    StoreUnavailable,
    Target,
    close_client,
    connect_check,
    unavailable,
)
from .failover import ClusterWatch
from .ids import StreamIds
from .keys import Keys
from .lease import ProcessLease
from .liveness import Liveness
from .mirror import Mirrors, RedisMirror
from .records import RedisRecords
from .routes import Routes
from .scripts import Scripts
from .state import State, Transition, next_state
from .stream import RedisStream

if TYPE_CHECKING:
    from ...config import Settings

__all__ = [
    "RedisStreamStore",
    "RedisStream",
    "RedisMirror",
    "RedisLog",
    "State",
    "StoreUnavailable",
    "connect_check",
]

log = logging.getLogger("twinstream.redis")

RedisLog = RedisStream | RedisMirror


class RedisStreamStore:
    """The store over Redis. Call :meth:`start` once the loop runs (or await
    :meth:`connect` for a checked start), :meth:`drain` or :meth:`close` at exit.

    The settings it shares with the memory store have no default here: they
    are declared once, in :class:`server.config.Settings` (build it with
    :meth:`from_settings`). What only this store has keeps its default here."""

    def __init__(
        self,
        backend: Backend,
        *,
        url: str,
        retention: float,
        idle_timeout: float,
        max_live_streams: int,
        wait_ms: int,
        batch_interval: float,
        max_events: int = 100_000,
        failover_timeout: float = 15.0,
        lease: float = 3.0,
        prefix: str = "twinstream:",
        mirror_linger: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.url = url
        self.target = Target(url)
        self.retention = retention
        self.idle_timeout = idle_timeout
        self.max_live_streams = max_live_streams
        self.max_events = max_events
        # WAIT 1 <wait_ms> after each node's batch (0: off); how long a cluster
        # node may fail (its replica not yet promoted) before its streams end.
        self.wait_ms = wait_ms
        # seconds between the starts of two batches, at least (--redis-batch-ms)
        self.batch_interval = batch_interval
        self.failover_timeout = failover_timeout
        self.lease = lease
        self.keys = Keys(prefix)
        self.mirror_linger = mirror_linger
        self.clock = clock
        self.state = State.CONNECTING
        # The parts; they reach what they share (the connections, the streams
        # generated here, outage handling) through this store, each typed by the
        # narrow protocol of what it uses (StreamHost, BatcherHost, MirrorsHost,
        # LeaseHost, LivenessHost), which this class satisfies structurally.
        self.local: dict[str, RedisStream] = {}
        self.mirrors = Mirrors(self)
        self.batcher = WriteBatcher(self)
        self.process_lease = ProcessLease(self)
        self.liveness = Liveness(self)
        self.records = RedisRecords(self)
        self.cluster_watch = ClusterWatch(self)
        # Any: redis-py types replies as bytes | str whatever decode_responses says
        self.redis: Any = None
        self.routes = Routes(self.target, None)
        self.ids = StreamIds(self.routes, self.keys)
        self.bus: Bus | None = None
        self.scripts: Scripts | None = None
        # The tick while connected; the reconnect loop while not.
        self._tasks: list[asyncio.Task[None]] = []
        self._reconnecting: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, backend: Backend, settings: Settings, **options: Any
    ) -> RedisStreamStore:
        """The store ``settings`` (a :class:`server.config.Settings` whose
        ``store`` is a Redis URL) describe; ``options``: this store's own."""
        return cls(
            backend,
            url=settings.store,
            retention=settings.retention,
            idle_timeout=settings.idle_timeout,
            max_live_streams=settings.max_streams,
            wait_ms=settings.redis_wait_ms,
            batch_interval=settings.redis_batch_ms / 1000,
            **options,
        )

    # -- state --------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Redis answers (SERVING or DRAINING)."""
        return self.state.available

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def token(self) -> str:
        """The lease token this process writes under (replaced if the lease is lost)."""
        return self.process_lease.token

    def _move(self, transition: Transition) -> None:
        old, self.state = self.state, next_state(self.state, transition)
        if old is not self.state:
            log.debug("store %s -> %s", old.name, self.state.name)

    def __len__(self) -> int:
        return len(self.local) + len(self.mirrors)

    def live_count(self) -> int:
        return sum(1 for stream in self.local.values() if not stream.ended)

    # -- connecting and outages -----------------------------------------------------------

    async def connect(self) -> None:
        """Connect, take the lease and subscribe; StoreUnavailable if Redis is down."""
        try:
            await self._connect()
        except (RedisError, *DOWN) as exc:
            await self._reset_connections()
            raise StoreUnavailable(f"cannot reach Redis at {self.url}: {exc}") from None
        self._start_tasks()

    def start(self) -> None:
        """Start in the background (no error if Redis is down: it keeps trying)."""
        if self._tasks or self._reconnecting is not None or self.closed:
            return
        self._reconnecting = asyncio.get_running_loop().create_task(self._recover())

    async def _connect(self) -> None:
        self.redis = self.target.client()
        self.routes = Routes(self.target, self.redis)
        self.ids = StreamIds(self.routes, self.keys)
        self.scripts = await Scripts.register(self.redis, self.target)
        self.bus = Bus(
            self.routes,
            self.mirrors.on_message,
            self.outage,
            self.mirrors.on_moved,
            self.failover_timeout,
        )
        await self.process_lease.take()
        self._move(Transition.CONNECTED)

    def _start_tasks(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.liveness.run())]
        self.process_lease.keep()
        self.batcher.resume()

    async def _reset_connections(self) -> None:
        bus, redis_client = self.bus, self.redis
        self.bus = self.redis = None
        if bus is not None:
            await bus.close()
        await self.routes.close()
        if redis_client is not None:
            with contextlib.suppress(Exception):
                await close_client(redis_client)

    async def _recover(self) -> None:
        """Reconnect until Redis answers, then serve again. Cancelled by close."""
        try:
            delay = 0.2
            while not self.closed:
                try:
                    await self._connect()
                except (RedisError, *DOWN):
                    await self._reset_connections()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                log.info("Redis at %s is reachable; serving streams", self.url)
                self._reconnecting = None
                self._start_tasks()
                return
        finally:
            if self._reconnecting is asyncio.current_task():
                self._reconnecting = None

    def outage(self, exc: BaseException) -> None:
        """Redis failed (any part's call was unreachable): end every live
        stream here with ``store_unavailable`` (shown from memory, written
        later if Redis takes it), end every mirror, and reconnect in the
        background. Only the first report of an outage does anything."""
        if not self.available:
            return
        if self.target.cluster and not self.cluster_watch.giving_up:
            # One node failing: the rest serve on while its replica takes over.
            self.cluster_watch.trouble(exc)
            return
        self._move(Transition.LOST)
        log.warning(
            "lost Redis at %s (%s); live streams end with store_unavailable",
            self.url,
            type(exc).__name__,
        )
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        for stream in list(self.local.values()):
            stream.confirm_all()  # shown from memory from now on
            self._stop_generation(stream, "store_unavailable", UNAVAILABLE_MESSAGE)
        self.mirrors.end_all()

        async def reconnect() -> None:
            await self._reset_connections()
            await self._recover()

        self._reconnecting = asyncio.get_running_loop().create_task(reconnect())

    # -- create / open / cancel ------------------------------------------------------------

    async def create(self, request: ChatRequest) -> RedisStream:
        """Start a stream here. ProtocolError 503 ``server_shutdown`` while
        shutting down, ``too_many_streams``, or ``store_unavailable`` when Redis
        cannot take it (nothing is left running then)."""
        if self.state.shutting_down:
            raise errors.ProtocolError(
                "server_shutdown", "this server is shutting down; retry on another", 503
            )
        if not self.available:
            raise unavailable()
        if self.live_count() >= self.max_live_streams:
            raise errors.ProtocolError(
                "too_many_streams", "the server is running too many streams; retry later", 503
            )
        stream = RedisStream(self, self.ids.new(), request)  # appends start, starts generating
        self.local[stream.id] = stream
        # Answer only once Redis has the stream, so any process can open it.
        if not await self.batcher.written() or stream.last_seq < 0:
            self._stop_generation(stream, "store_unavailable", UNAVAILABLE_MESSAGE)
            self.local.pop(stream.id, None)
            self.batcher.drop(stream.id)
            raise unavailable()
        return stream

    async def open(self, stream_id: str) -> RedisLog | None:
        """The stream's log, from this process or Redis; None if unknown or expired.
        ProtocolError ``store_unavailable`` (503) if Redis cannot be asked."""
        stream: RedisLog | None = self.local.get(stream_id) or self.mirrors.get(stream_id)
        if stream is not None:
            stream.last_read_at = self.clock()
            if isinstance(stream, RedisMirror) and not stream.ended and not stream.loading:
                await self.mirrors.catch_up(stream)
            return stream
        if not self.available:
            raise unavailable()
        return await self.mirrors.open(stream_id)

    async def cancel(self, stream_id: str) -> bool | None:
        """Cancel a stream wherever it is generated; None if unknown."""
        stream = await self.open(stream_id)
        if stream is None:
            return None
        return stream.cancel()

    # -- stopping streams generated here ----------------------------------------------------

    def abandon(self, stream: RedisStream) -> None:
        """Stop a local stream that Redis no longer accepts from us (declared
        dead while we stalled): its readers here are given the log as Redis
        holds it, which ends with ``interrupted``; later opens go to Redis."""
        if self.local.get(stream.id) is stream:
            del self.local[stream.id]
        self.batcher.drop(stream.id)
        stream.fence()
        stream.cancel()  # its done/cancelled is ignored: the stream is fenced
        asyncio.get_running_loop().create_task(self._adopt(stream))

    async def _adopt(self, stream: RedisStream) -> None:
        texts: list[str] = []
        if self.redis is not None:
            with contextlib.suppress(RedisError, *DOWN):
                entries = await self.redis.xrange(
                    self.keys.stream(stream.id), f"{stream.last_seq + 1}-0", "+"
                )
                texts = [fields["e"] for _, fields in entries]
        stream.adopt(texts)

    def served_again(self) -> None:
        """A cluster serves every slot again after a node failed: write at once
        what waited for it."""
        self.batcher.resume()

    def give_up(self, stream: RedisStream) -> None:
        """A cluster node holding the stream stayed down past ``failover_timeout``:
        end it with ``store_unavailable``, shown from memory (its events are
        written later if Redis takes them)."""
        if not stream.ended:
            log.warning("stream %s: its Redis node stayed down; ending it", stream.id)
            self.batcher.from_memory.add(stream.id)
            stream.confirm_all()
            self._stop_generation(stream, "store_unavailable", UNAVAILABLE_MESSAGE)

    def _stop_generation(self, stream: RedisStream, code: str, message: str) -> None:
        """End a local stream with ``error``/``code`` (drain deadline, Redis lost),
        written to Redis like any event."""
        if not stream.ended:
            stream.end_reason = (code, message)
            stream.cancel()  # generation appends done/cancelled, which end_reason replaces

    # -- shutting down -------------------------------------------------------------------------

    async def drain(self, deadline: float) -> None:
        """Refuse new streams; let local generations run for up to ``deadline``
        seconds, then end the rest with ``error``/``server_shutdown``; write
        everything to Redis. Then :meth:`close`."""
        self._move(Transition.DRAIN)
        live = [task for s in self.local.values() if (task := s.generating) is not None]
        if live:
            await asyncio.wait(live, timeout=deadline)
        self.hurry()
        await self.close()

    def hurry(self) -> None:
        """End the streams generating here now with ``error``/``server_shutdown``
        (the drain's deadline, or a second signal)."""
        for stream in list(self.local.values()):
            self._stop_generation(stream, "server_shutdown", SHUTDOWN_MESSAGE)

    async def close(self) -> None:
        """Cancel live generations (``done``/``cancelled``), write what is pending
        (for up to 5 s each), release the lease and disconnect. Idempotent."""
        for stream in list(self.local.values()):
            stream.cancel()
        tasks = [task for s in self.local.values() if (task := s.generating) is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self.available:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.batcher.written(), timeout=5)
        was_available = self.available
        self._move(Transition.CLOSE)
        self.process_lease.stop()
        self.cluster_watch.stop()
        for task in [*self._tasks, self._reconnecting]:
            if task is not None:
                task.cancel()
        self._tasks = []
        self.batcher.stop()
        if self.redis is not None and was_available:
            with contextlib.suppress(RedisError, *DOWN):
                for lease in self.keys.leases(self.token):
                    await self.redis.delete(lease)
        await self._reset_connections()
