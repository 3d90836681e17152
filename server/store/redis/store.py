"""Streams kept in Redis, so that several processes and machines share them.

The store/log seam of ``server/core/`` (``docs/architecture.md``), backed by
Redis through redis-py's asyncio client:

* Each stream's log is a Redis Stream ``{prefix}s:{id}`` whose entry ids are
  derived from ``seq`` (``{seq}-1``, field ``e`` = the event's JSON text), and a
  small hash ``{prefix}m:{id}`` (``owner``, ``last``, ``end``). Both expire
  ``retention`` seconds after the last append; a stream ends itself with
  ``error``/``stream_too_long`` before it exceeds ``max_events``.
* Generation runs once, in the process that created the stream. Its appends
  reach the local log at once (local followers are pushed synchronously) and
  are written to Redis in batches: everything appended while one write is in
  flight goes out in the next single ``EVALSHA`` (all streams in one call), so
  round trips do not grow with the event rate.
* The same script publishes each stream's new events on its channel
  ``{prefix}c:{id}``. Every process has ONE pub/sub connection: a stream opened
  here but generated elsewhere gets a local mirror, loaded with ``XRANGE`` and
  then fed by that connection's subscription to the stream's channel.
* Every process holds a lease ``{prefix}o:{token}`` that a thread renews; appends
  are fenced by it (the script writes only while the caller's lease is live and
  the stream is not ended). A process whose lease is gone (it was killed or
  stalled) has its streams declared dead by whoever reads them: an ``error``
  event with code ``interrupted``.
* ``cancel`` of a stream generated elsewhere is a message on the owner's
  control channel ``{prefix}k:{token}``.
* Redis lost: every live stream here ends with ``error``/``store_unavailable``,
  ``create`` answers 503 ``store_unavailable``; once Redis answers again the
  store serves again by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...backends.base import Backend, BackendError, ChatRequest
from ...core.log import CATCH_UP_BYTES, StreamLog, new_stream_id
from ...core.stream import Stream
from ...wire import errors, events

__all__ = [
    "RedisStreamStore",
    "RedisStream",
    "RedisMirror",
    "StoreUnavailable",
    "connect_check",
]

log = logging.getLogger("twinstream.redis")

_UNAVAILABLE_MESSAGE = "the stream store (Redis) is unavailable; retry shortly"
#: Failures that mean "Redis is unreachable" (an outage), as opposed to a bad reply.
_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)

# Append events to several streams in one call, fenced by the caller's lease.
# KEYS: lease, then (stream key, meta key) per stream.
# ARGV: token, ttl_ms, then per stream: channel, first_seq, n, ended ("1"/"0"), n texts.
# Returns -1 if the lease is not the caller's; otherwise the 1-based positions of
# the streams it refused (owned by someone else, already ended, or a gap).
# Entries already written (a batch retried after a lost reply) are skipped, so a
# retry never duplicates: the explicit ids make that check one HGET.
_APPEND_LUA = """
local token = ARGV[1]
if redis.call('GET', KEYS[1]) ~= token then return -1 end
local ttl = ARGV[2]
local a = 3
local refused = {}
for k = 2, #KEYS, 2 do
  local skey, mkey = KEYS[k], KEYS[k + 1]
  local chan, first, n, fin = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  a = a + 4
  local meta = redis.call('HMGET', mkey, 'owner', 'last', 'end')
  if not meta[1] and first == 0 then
    redis.call('HSET', mkey, 'owner', token, 'last', -1)
    meta = {token, '-1', false}
  end
  local from = -1
  if meta[1] == token and not meta[3] then from = tonumber(meta[2]) + 1 - first end
  if from < 0 then
    refused[#refused + 1] = k / 2
  elseif from < n then
    local parts = {}
    for i = from, n - 1 do
      local text = ARGV[a + i]
      redis.call('XADD', skey, (first + i) .. '-1', 'e', text)
      parts[#parts + 1] = text
    end
    if fin == '1' then
      redis.call('HSET', mkey, 'last', first + n - 1, 'end', '1')
    else
      redis.call('HSET', mkey, 'last', first + n - 1)
    end
    redis.call('PEXPIRE', skey, ttl)
    redis.call('PEXPIRE', mkey, ttl)
    redis.call('PUBLISH', chan, (first + from) .. '\\n' .. table.concat(parts, '\\n'))
  end
  a = a + n
end
return refused
"""

# End a stream whose owner's lease is gone with one terminal event.
# KEYS: stream key, meta key, the owner's lease. ARGV: seq, text, channel, ttl_ms.
# Returns 1 written, 0 owner alive, -1 already ended, -2 unknown, -3 seq moved on.
_DECLARE_DEAD_LUA = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local meta = redis.call('HMGET', KEYS[2], 'last', 'end')
if not meta[1] then return -2 end
if meta[2] then return -1 end
if tonumber(meta[1]) + 1 ~= tonumber(ARGV[1]) then return -3 end
redis.call('XADD', KEYS[1], ARGV[1] .. '-1', 'e', ARGV[2])
redis.call('HSET', KEYS[2], 'last', ARGV[1], 'end', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[3], ARGV[1] .. '\\n' .. ARGV[2])
return 1
"""


class StoreUnavailable(RuntimeError):
    """Redis cannot be reached (raised by :func:`connect_check`)."""


def _client(url: str) -> aioredis.Redis:
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
    client = _client(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:  # unreachable, or e.g. a password it refuses
        raise StoreUnavailable(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        await client.aclose(close_connection_pool=True)


class RedisStream(Stream):
    """A stream generated in this process: the core's :class:`Stream` (its
    generation task, its log), whose every append is queued for Redis.

    Write-through: followers, here as anywhere, see an event only once Redis
    holds it (``last_seq``, ``ended`` and ``read`` stop at what Redis
    confirmed). So whatever a client has seen, any process can resume after
    it, and a generator that dies can never have shown a client events that
    the shared log does not have. While Redis is unreachable the log is
    served from memory as it is (its streams end with ``store_unavailable``).

    ``end_reason`` turns the ``done``/``cancelled`` that a cancelled
    generation appends into an ``error`` (drain deadline: code
    ``server_shutdown``; Redis lost: ``store_unavailable``)."""

    __slots__ = ("owner", "end_reason", "_redis_store", "_confirmed", "_confirmed_end")

    local = True

    def __init__(self, store: RedisStreamStore, stream_id: str, request: ChatRequest) -> None:
        self._redis_store = store
        self.owner = store.token
        self.end_reason: tuple[str, str] | None = None
        self._confirmed = -1  # the last seq Redis holds (or that may be shown)
        self._confirmed_end = False
        super().__init__(stream_id, store.backend, request)

    # -- what followers see: only what Redis holds -----------------------------------

    @property
    def last_seq(self) -> int:
        return self._confirmed

    @property
    def ended(self) -> bool:
        return self._confirmed_end

    def read(self, after: int, max_bytes: int = CATCH_UP_BYTES) -> list[bytes]:
        if after >= self._confirmed:
            return []
        return super().read(after, max_bytes)[: self._confirmed - after]

    def confirm(self, seq: int) -> None:
        """Events up to ``seq`` are in Redis (or may be shown anyway): push them."""
        if seq <= self._confirmed:
            return
        self._confirmed = seq
        if self.ended_at is not None and seq == len(self._ends) - 1:
            self._confirmed_end = True
        self._notify_followers()
        if self._confirmed_end:
            super()._on_ended()  # resolve wait_ended() now that the end is shown

    def confirm_all(self) -> None:
        self.confirm(len(self._ends) - 1)

    # -- appends: queued for Redis, shown when confirmed -------------------------------

    def append(self, event: dict[str, Any]) -> None:
        if self.ended_at is None and self.end_reason is not None:
            if event.get("finish_reason") == "cancelled":
                event = events.error_event(self.id, len(self._ends), *self.end_reason)
        super().append(event)

    def append_text(self, text: str | bytes, terminal: bool) -> None:
        if self.ended_at is not None:
            return
        seq = len(self._ends)
        if not terminal and seq >= self._redis_store.max_events - 1:
            # Raised inside the generation loop (deltas are appended only
            # there), which ends the log with this error.
            raise BackendError(
                "stream_too_long",
                f"the stream reached the server's limit of {self._redis_store.max_events} events",
            )
        # Into the log without pushing: followers hear of it in confirm().
        followers, self.followers = self.followers, []
        try:
            super().append_text(text, terminal)
        finally:
            self.followers = followers
        data = text.encode() if isinstance(text, str) else text
        if events.is_delta_record(data):  # the log keeps deltas short; Redis the JSON
            data = events.delta_from_record(self._delta_head, seq, data)
        self._redis_store._enqueue(self, seq, data, terminal)

    def _on_ended(self) -> None:
        pass  # deferred to confirm(): the end is not shown before Redis has it

    def end_here(self, code: str, message: str) -> None:
        """End the log for this process's readers only (nothing goes to Redis)."""
        if self.ended_at is None:
            event = events.error_event(
                self.id, len(self._ends), code, message, t=round(time.time(), 6)
            )
            followers, self.followers = self.followers, []
            try:
                StreamLog.append_text(self, events.dumps(event), True)
            finally:
                self.followers = followers
        self.confirm_all()


class RedisMirror(StreamLog):
    """A stream generated by another process, as this process sees it: loaded
    from Redis, then fed by the process's one pub/sub subscription."""

    __slots__ = ("owner", "loading", "_early", "_redis_store")

    local = False

    def __init__(self, store: RedisStreamStore, stream_id: str, owner: str) -> None:
        super().__init__(stream_id, "")
        self._redis_store = store
        self.owner = owner
        self.loading = True  # between SUBSCRIBE and its XRANGE
        self._early: list[tuple[int, list[str]]] = []

    def cancel(self) -> bool:
        """Ask the owner (over its control channel) to stop; it ends with
        ``done``/``cancelled``, which reaches this mirror like any event."""
        if self.ended:
            return False
        self._redis_store._send_cancel(self)
        return True

    def apply(self, first: int, texts: list[str]) -> bool:
        """Add events published from Redis; False if they leave a gap (refill)."""
        if self.loading:
            self._early.append((first, texts))
            return True
        have = self.last_seq + 1
        if first > have:
            return False
        for text in texts[have - first :]:
            self.append_text(text, _is_terminal_text(text))
        return True

    def end_here(self, code: str, message: str) -> None:
        _end_locally(self, code, message)


RedisLog = RedisStream | RedisMirror


def _end_locally(stream: StreamLog, code: str, message: str) -> None:
    if not stream.ended:
        event = events.error_event(
            stream.id, stream.last_seq + 1, code, message, t=round(time.time(), 6)
        )
        StreamLog.append_text(stream, events.dumps(event), True)


def _is_terminal_text(text: str) -> bool:
    # Events are written by events.dumps: compact, "type" first.
    return text.startswith('{"type":"done"') or text.startswith('{"type":"error"')


class _LeaseKeeper:
    """Renews a process's lease from a thread, on its own connection.

    A thread, not a task: a process whose event loop is merely overloaded
    (its callbacks run late, by a second or more) is alive and must keep its
    streams; only a process that is dead, stopped, or whose loop has made no
    progress for ``wedged_after`` seconds lets its lease lapse. The loop proves
    progress by calling :meth:`beat`.
    """

    def __init__(self, store: RedisStreamStore, wedged_after: float) -> None:
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
        client = redis.Redis.from_url(
            store.url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
        )
        try:
            while not self._stop.wait(store.lease / 3):
                if time.monotonic() - self.last_beat > self.wedged_after:
                    continue  # the loop is wedged: let the lease lapse
                token = store.token
                try:
                    kept = client.set(
                        store._lease_key(token), token, xx=True, px=int(store.lease * 1000)
                    )
                except (RedisError, OSError):
                    continue  # an outage: the loop notices it on its own calls
                if not kept and not self._stop.is_set():
                    self.loop.call_soon_threadsafe(store._lease_lost, token)
        finally:
            client.close()


class RedisStreamStore:
    """The store over Redis. Call :meth:`start` once the loop runs (or await
    :meth:`connect` for a checked start), :meth:`drain` or :meth:`close` at exit."""

    def __init__(
        self,
        backend: Backend,
        url: str = "redis://127.0.0.1:6379/0",
        retention: float = 300.0,
        idle_timeout: float = 60.0,
        max_live_streams: int = 10_000,
        max_events: int = 100_000,
        lease: float = 3.0,
        prefix: str = "twinstream:",
        mirror_linger: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.url = url
        self.retention = retention
        self.idle_timeout = idle_timeout
        self.max_live_streams = max_live_streams
        self.max_events = max_events
        self.lease = lease
        self.prefix = prefix
        self.mirror_linger = mirror_linger
        self._clock = clock
        self.token = secrets.token_hex(8)
        self.available = False
        self.draining = False
        self._local: dict[str, RedisStream] = {}
        self._mirrors: dict[str, RedisMirror] = {}
        self._loading: dict[str, asyncio.Future[RedisMirror | None]] = {}
        self._subscribed: dict[str, asyncio.Future[None]] = {}
        # stream id -> [log, first unwritten seq, texts, ended]; insertion-ordered
        self._pending: dict[str, list[Any]] = {}
        self._waiters: list[asyncio.Future[bool]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        # Any: redis-py types replies as bytes | str whatever decode_responses says
        self._redis: Any = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._recovering: asyncio.Task[None] | None = None
        self._keeper: _LeaseKeeper | None = None
        self._closed = False
        self._append_script: Any = None
        self._dead_script: Any = None

    # -- keys ---------------------------------------------------------------------------

    def _skey(self, stream_id: str) -> str:
        return f"{self.prefix}s:{stream_id}"

    def _mkey(self, stream_id: str) -> str:
        return f"{self.prefix}m:{stream_id}"

    def _channel(self, stream_id: str) -> str:
        return f"{self.prefix}c:{stream_id}"

    def _lease_key(self, token: str) -> str:
        return f"{self.prefix}o:{token}"

    def _control(self, token: str) -> str:
        return f"{self.prefix}k:{token}"

    def _read_key(self, stream_id: str) -> str:
        return f"{self.prefix}r:{stream_id}"

    # -- life cycle ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._local) + len(self._mirrors)

    def live_count(self) -> int:
        return sum(1 for stream in self._local.values() if not stream.ended)

    async def connect(self) -> None:
        """Connect, take the lease and subscribe; StoreUnavailable if Redis is down."""
        try:
            await self._connect()
        except (RedisError, OSError) as exc:
            await self._reset_connections()
            raise StoreUnavailable(f"cannot reach Redis at {self.url}: {exc}") from None
        self._start_tasks()

    def start(self) -> None:
        """Start in the background (no error if Redis is down: it keeps trying)."""
        if self._tasks or self._recovering is not None:
            return
        self._recovering = asyncio.get_running_loop().create_task(self._recover())

    async def _connect(self) -> None:
        self._redis = _client(self.url)
        self._append_script = self._redis.register_script(_APPEND_LUA)
        self._dead_script = self._redis.register_script(_DECLARE_DEAD_LUA)
        await self._redis.set(self._lease_key(self.token), self.token, px=int(self.lease * 1000))
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(self._control(self.token))
        self.available = True

    def _start_tasks(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._tick_forever())]
        if self._keeper is None:
            self._keeper = _LeaseKeeper(self, wedged_after=max(10.0, 3 * self.lease))
            self._beat()
        if self._pending:
            self._schedule_flush()

    async def _reset_connections(self) -> None:
        pubsub, client = self._pubsub, self._redis
        self._pubsub = self._redis = None
        self._subscribed.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose(close_connection_pool=True)

    async def _recover(self) -> None:
        """Reconnect until Redis answers, then serve again."""
        try:
            delay = 0.2
            while not self._closed:
                try:
                    await self._connect()
                except (RedisError, OSError):
                    await self._reset_connections()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                log.info("Redis at %s is reachable; serving streams", self.url)
                self._recovering = None
                self._start_tasks()
                return
        finally:
            if self._recovering is asyncio.current_task():
                self._recovering = None

    def _outage(self, exc: BaseException) -> None:
        """Redis failed: end every live stream here with store_unavailable and
        reconnect in the background."""
        if not self.available or self._closed:
            return
        self.available = False
        log.warning(
            "lost Redis at %s (%s); live streams end with store_unavailable",
            self.url,
            type(exc).__name__,
        )
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        for stream in list(self._local.values()):
            stream.confirm_all()  # shown from memory from now on
            self._stop_generation(stream, "store_unavailable", _UNAVAILABLE_MESSAGE)
        mirrors, self._mirrors = self._mirrors, {}
        for mirror in mirrors.values():
            mirror.end_here("store_unavailable", _UNAVAILABLE_MESSAGE)
        for waiter in self._loading.values():
            if not waiter.done():
                waiter.set_exception(_unavailable())
                waiter.exception()  # retrieved: whoever waits gets it, nobody need
        self._loading.clear()
        loop = asyncio.get_running_loop()

        async def reconnect() -> None:
            await self._reset_connections()
            await self._recover()

        self._recovering = loop.create_task(reconnect())

    # -- create / open / cancel ------------------------------------------------------------

    async def create(self, request: ChatRequest) -> RedisStream:
        """Start a stream here. ProtocolError 503 ``too_many_streams``, or
        ``store_unavailable`` when Redis cannot take it (nothing is left running then)."""
        if self.draining:
            raise errors.ProtocolError(
                "server_shutdown", "this server is shutting down; retry on another", 503
            )
        if not self.available:
            raise _unavailable()
        if self.live_count() >= self.max_live_streams:
            raise errors.ProtocolError(
                "too_many_streams", "the server is running too many streams; retry later", 503
            )
        stream = RedisStream(self, new_stream_id(), request)  # appends start, starts generating
        self._local[stream.id] = stream
        # Answer only once Redis has the stream, so any process can open it.
        if not await self._written():
            self._stop_generation(stream, "store_unavailable", _UNAVAILABLE_MESSAGE)
            self._local.pop(stream.id, None)
            self._pending.pop(stream.id, None)
            raise _unavailable()
        return stream

    async def open(self, stream_id: str) -> RedisLog | None:
        """The stream's log, from this process or Redis; None if unknown or expired.
        ProtocolError ``store_unavailable`` (503) if Redis cannot be asked."""
        stream: RedisLog | None = self._local.get(stream_id) or self._mirrors.get(stream_id)
        if stream is not None:
            stream.last_read_at = self._clock()
            if isinstance(stream, RedisMirror) and not stream.ended and not stream.loading:
                await self._catch_up(stream)
            return stream
        if not self.available:
            raise _unavailable()
        loading = self._loading.get(stream_id)
        if loading is None:
            loading = asyncio.get_running_loop().create_future()
            self._loading[stream_id] = loading
            try:
                result = await self._load(stream_id)
            except _DOWN as exc:
                self._outage(exc)
                if not loading.done():
                    loading.set_exception(_unavailable())
                    loading.exception()  # retrieved: whoever waits gets it, nobody need
                raise _unavailable() from None
            finally:
                if self._loading.get(stream_id) is loading:
                    del self._loading[stream_id]
            if not loading.done():
                loading.set_result(result)
            return result
        return await asyncio.shield(loading)

    async def cancel(self, stream_id: str) -> bool | None:
        """Cancel a stream wherever it is generated; None if unknown."""
        stream = await self.open(stream_id)
        if stream is None:
            return None
        return stream.cancel()

    def _send_cancel(self, stream: RedisMirror) -> None:
        redis_client = self._redis
        if redis_client is None:
            return

        async def publish() -> None:
            with contextlib.suppress(RedisError, OSError):
                await redis_client.publish(self._control(stream.owner), stream.id)

        asyncio.get_running_loop().create_task(publish())

    async def _load(self, stream_id: str) -> RedisMirror | None:
        assert self._redis is not None
        meta = await self._redis.hmget(self._mkey(stream_id), "owner", "last", "end")
        if meta[0] is None:
            return None
        mirror = RedisMirror(self, stream_id, meta[0])
        self._mirrors[stream_id] = mirror
        try:
            if meta[2] is None:
                # Live: subscribe before reading, so nothing published after the
                # read is missed (messages arriving meanwhile wait in _early).
                await self._subscribe(stream_id)
            entries = await self._redis.xrange(self._skey(stream_id))
        except BaseException:
            self._mirrors.pop(stream_id, None)
            raise
        texts = [fields["e"] for _, fields in entries]
        if not texts or not texts[0].startswith('{"type":"start"'):
            self._mirrors.pop(stream_id, None)
            return None  # expired between the two reads
        start = json.loads(texts[0])
        mirror.model = start.get("model", "")
        mirror.created = start.get("created", mirror.created)
        mirror.loading = False
        for text in texts:
            mirror.append_text(text, _is_terminal_text(text))
        early, mirror._early = mirror._early, []
        for first, texts in early:
            if not mirror.apply(first, texts):
                await self._refill(mirror)
        if not mirror.ended:
            await self._check_owner(mirror)
        return mirror

    async def _subscribe(self, stream_id: str) -> None:
        channel = self._channel(stream_id)
        done = asyncio.get_running_loop().create_future()
        self._subscribed[channel] = done
        await self._pubsub.subscribe(channel)
        # The confirmation comes through the listener, in order with the messages.
        await asyncio.wait_for(done, timeout=5.0)

    async def _catch_up(self, mirror: RedisMirror) -> None:
        """Bring a live mirror up to what Redis holds before a resume is checked
        against it: a client may have seen an event from the generating process
        an instant before its publication reached this one."""
        if not self.available:
            return
        try:
            last = await self._redis.hget(self._mkey(mirror.id), "last")
            if last is not None and int(last) > mirror.last_seq:
                await self._refill(mirror)
        except _DOWN as exc:
            self._outage(exc)
            raise _unavailable() from None

    async def _refill(self, mirror: RedisMirror) -> None:
        """Read what a mirror missed (a gap in what pub/sub delivered)."""
        assert self._redis is not None
        entries = await self._redis.xrange(self._skey(mirror.id), f"{mirror.last_seq + 1}-0", "+")
        for entry_id, fields in entries:
            seq = int(entry_id.split("-")[0])
            if seq == mirror.last_seq + 1:
                mirror.append_text(fields["e"], _is_terminal_text(fields["e"]))

    # -- generation and appends -------------------------------------------------------------

    def _enqueue(self, stream: RedisStream, seq: int, text: str | bytes, terminal: bool) -> None:
        """Queue an event appended here for Redis (called by RedisStream).
        While Redis is unreachable it is shown at once (and written when Redis
        is back, if it still takes it)."""
        pending = self._pending.get(stream.id)
        if pending is None:
            self._pending[stream.id] = [stream, seq, [text], terminal]
        else:
            pending[2].append(text)
            pending[3] = terminal
        if not self.available:
            stream.confirm(seq)
        elif not self._flush_scheduled and self._flushing is None:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Everything appended during this loop iteration goes in one call.
        self._flush_scheduled = True
        asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        if self._flushing is None and self._pending and self.available:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _written(self) -> bool:
        """Wait until everything appended so far is in Redis (False: Redis failed)."""
        if not self._pending and self._flushing is None:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if not self._flush_scheduled and self._flushing is None:
            if not self.available:
                return False
            self._schedule_flush()
        return await waiter

    async def _flush(self) -> None:
        try:
            while self._pending and self.available:
                batch, self._pending = self._pending, {}
                waiters, self._waiters = self._waiters, []
                try:
                    await self._write(batch)
                except _DOWN as exc:
                    # Keep the batch (in front of anything newer) for when Redis returns.
                    for stream_id, item in self._pending.items():
                        if stream_id in batch:
                            batch[stream_id][2].extend(item[2])
                            batch[stream_id][3] = item[3]
                        else:
                            batch[stream_id] = item
                    self._pending = batch
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(False)
                    self._flushing = None
                    self._outage(exc)
                    return
                except RedisError:
                    # A reply that is an error (not an outage) is a bug: say so, and
                    # stop those streams rather than retry the same batch forever.
                    log.exception("Redis refused a batch of %d streams", len(batch))
                    for item in batch.values():
                        self._abandon(item[0])
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(False)
                    continue
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(True)
        finally:
            if self._flushing is asyncio.current_task():
                self._flushing = None
        if self._waiters and not self._pending:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(self.available)

    async def _write(self, batch: dict[str, list[Any]]) -> None:
        keys: list[str] = [self._lease_key(self.token)]
        args: list[Any] = [self.token, int(self.retention * 1000)]
        for stream_id, (_stream, first, texts, ended) in batch.items():
            keys.append(self._skey(stream_id))
            keys.append(self._mkey(stream_id))
            args.append(self._channel(stream_id))
            args.append(first)
            args.append(len(texts))
            args.append("1" if ended else "0")
            args.extend(texts)
        result = await self._append_script(keys=keys, args=args)
        if result == -1:
            self._lease_lost()
            return
        refused = {int(position) - 1 for position in result}
        for index, (stream, first, texts, _ended) in enumerate(batch.values()):
            if index in refused:
                # Someone declared this stream dead (our lease lapsed): stop writing it.
                self._abandon(stream)
            else:
                stream.confirm(first + len(texts) - 1)

    def _abandon(self, stream: RedisStream) -> None:
        """Stop a local stream that Redis no longer accepts from us; its readers
        here get ``interrupted`` and later opens go to Redis."""
        if self._local.get(stream.id) is stream:
            del self._local[stream.id]
        self._pending.pop(stream.id, None)
        stream.end_here("interrupted", "the process generating this stream stopped; start it again")
        stream.cancel()  # its done/cancelled is ignored: the log has ended

    def _beat(self) -> None:
        """Tell the lease keeper the loop makes progress (a timer chain)."""
        if self._keeper is not None and not self._closed:
            self._keeper.beat()
            asyncio.get_running_loop().call_later(self.lease / 6, self._beat)

    def _lease_lost(self, token: str | None = None) -> None:
        """Our lease lapsed (we stalled): our streams may be declared dead by
        others, so stop them all and take a new token for new streams."""
        if token is not None and token != self.token:
            return  # about a token already replaced
        log.warning("lease lost; abandoning %d streams", len(self._local))
        for stream in list(self._local.values()):
            self._abandon(stream)
        self.token = secrets.token_hex(8)
        redis_client = self._redis

        async def renew() -> None:
            if redis_client is None:
                return
            try:
                await redis_client.set(
                    self._lease_key(self.token), self.token, px=int(self.lease * 1000)
                )
                await self._pubsub.subscribe(self._control(self.token))
            except _DOWN as exc:
                self._outage(exc)

        asyncio.get_running_loop().create_task(renew())

    def _stop_generation(self, stream: RedisStream, code: str, message: str) -> None:
        """End a local stream with ``error``/``code`` (drain deadline, Redis lost),
        written to Redis like any event."""
        if not stream.ended:
            stream.end_reason = (code, message)
            stream.cancel()  # generation appends done/cancelled, which end_reason replaces

    # -- the subscription --------------------------------------------------------------------

    async def _listen(self) -> None:
        """The process's one pub/sub connection: stream channels feed mirrors,
        the control channel carries cancels for streams generated here."""
        pubsub = self._pubsub
        control_prefix = self._control("")
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message["type"]
                channel = message["channel"]
                if kind == "message":
                    if channel.startswith(control_prefix):
                        stream = self._local.get(message["data"])
                        if stream is not None:
                            stream.cancel()
                        continue
                    self._on_published(channel, message["data"])
                elif kind == "subscribe":
                    done = self._subscribed.get(channel)
                    if done is not None and not done.done():
                        done.set_result(None)
        except asyncio.CancelledError:
            raise
        except _DOWN as exc:
            self._outage(exc)
        except Exception as exc:  # e.g. a half-closed connection inside redis-py
            log.exception("pub/sub listener failed")
            self._outage(exc)

    def _on_published(self, channel: str, data: str) -> None:
        stream_id = channel[len(self.prefix) + 2 :]
        mirror = self._mirrors.get(stream_id)
        if mirror is None:
            return
        head, _, rest = data.partition("\n")
        if not mirror.apply(int(head), rest.split("\n")):
            asyncio.get_running_loop().create_task(self._refill_quietly(mirror))

    async def _refill_quietly(self, mirror: RedisMirror) -> None:
        try:
            await self._refill(mirror)
        except _DOWN as exc:
            self._outage(exc)

    # -- the periodic tick: lease, liveness, idleness, forgetting ----------------------------

    async def _tick_forever(self) -> None:
        interval = self.lease / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except _DOWN as exc:
                self._outage(exc)
                return

    async def tick(self) -> None:
        """Check Redis, mark streams read here, declare dead the streams whose
        owner's lease is gone, cancel unread local streams, forget old mirrors."""
        if self._redis is None:
            return
        now = self._clock()
        read_ttl = int(max(self.idle_timeout, self.lease) * 1000)
        live_mirrors = [m for m in self._mirrors.values() if not m.ended and not m.loading]
        owners = sorted({m.owner for m in live_mirrors})
        async with self._redis.pipeline(transaction=False) as pipe:
            # (the lease itself is renewed by the _LeaseKeeper thread)
            pipe.ping()
            for mirror in live_mirrors:
                if mirror.followers:
                    pipe.set(self._read_key(mirror.id), "1", px=read_ttl)
            for owner in owners:
                pipe.exists(self._lease_key(owner))
            idle = [
                s
                for s in self._local.values()
                if not s.ended and not s.followers and now - s.last_read_at >= self.idle_timeout
            ]
            for stream in idle:
                pipe.exists(self._read_key(stream.id))
            replies = await pipe.execute()
        alive_replies = replies[len(replies) - len(idle) - len(owners) : len(replies) - len(idle)]
        dead = {owner for owner, alive in zip(owners, alive_replies) if not alive}
        for mirror in live_mirrors:
            if mirror.owner in dead:
                await self._declare_dead(mirror)
        for stream, read_elsewhere in zip(idle, replies[len(replies) - len(idle) :]):
            if read_elsewhere:
                stream.last_read_at = now
            else:
                log.info("cancelling stream %s: unread for %.0fs", stream.id, self.idle_timeout)
                stream.cancel()
        for stream_id, stream in list(self._local.items()):
            # Ended streams are served from Redis like any other once nobody here reads them.
            if stream.ended and not stream.followers and stream_id not in self._pending:
                if now - stream.last_read_at >= self.mirror_linger:
                    del self._local[stream_id]
        for stream_id, mirror in list(self._mirrors.items()):
            if not mirror.followers and not mirror.loading:
                if now - mirror.last_read_at >= self.mirror_linger:
                    del self._mirrors[stream_id]
                    if self._subscribed.pop(self._channel(stream_id), None) is not None:
                        await self._pubsub.unsubscribe(self._channel(stream_id))

    async def _check_owner(self, mirror: RedisMirror) -> None:
        assert self._redis is not None
        if not await self._redis.exists(self._lease_key(mirror.owner)):
            await self._declare_dead(mirror)

    async def _declare_dead(self, mirror: RedisMirror) -> None:
        """The owner's lease is gone: end the stream in Redis with ``interrupted``
        (exactly once, whoever notices first); the mirror gets it by pub/sub."""
        assert self._redis is not None
        for _ in range(5):
            last = await self._redis.hget(self._mkey(mirror.id), "last")
            if last is None:
                return
            seq = int(last) + 1
            text = events.dumps(
                events.error_event(
                    mirror.id,
                    seq,
                    "interrupted",
                    "the process generating this stream stopped; start it again",
                    t=round(time.time(), 6),
                )
            )
            result = await self._dead_script(
                keys=[self._skey(mirror.id), self._mkey(mirror.id), self._lease_key(mirror.owner)],
                args=[seq, text, self._channel(mirror.id), int(self.retention * 1000)],
            )
            if result != -3:
                break
        if not mirror.ended and mirror.last_seq < seq:
            await self._refill(mirror)

    # -- shutting down -------------------------------------------------------------------------

    async def drain(self, deadline: float) -> None:
        """Refuse new streams; let local generations run for up to ``deadline``
        seconds, then end the rest with ``error``/``server_shutdown``; write
        everything to Redis. Then :meth:`close`."""
        self.draining = True
        live = [task for s in self._local.values() if (task := s.generating) is not None]
        if live:
            await asyncio.wait(live, timeout=deadline)
        for stream in list(self._local.values()):
            self._stop_generation(
                stream, "server_shutdown", "the server shut down before this stream finished"
            )
        await self.close()

    async def close(self) -> None:
        """Cancel live generations (``done``/``cancelled``), write what is pending,
        release the lease and disconnect."""
        for stream in list(self._local.values()):
            stream.cancel()
        tasks = [task for s in self._local.values() if (task := s.generating) is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self.available:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._written(), timeout=5)
        self._closed = True
        if self._keeper is not None:
            self._keeper.stop()
        for task in [*self._tasks, self._recovering]:
            if task is not None:
                task.cancel()
        self._tasks = []
        if self._flushing is not None:
            self._flushing.cancel()
        if self._redis is not None and self.available:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.delete(self._lease_key(self.token))
        self.available = False
        await self._reset_connections()


def _unavailable() -> errors.ProtocolError:
    return errors.ProtocolError("store_unavailable", _UNAVAILABLE_MESSAGE, 503)
