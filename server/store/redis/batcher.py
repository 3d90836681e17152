"""The write batcher: every append of this process's streams goes to Redis in
batches, one ``EVALSHA`` for all streams, so round trips do not grow with the
event rate."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.exceptions import RedisError

from .connection import DOWN, Target
from .keys import Keys
from .scripts import FENCED, Scripts
from .stream import RedisStream

__all__ = ["BatcherHost", "Pending", "WriteBatcher"]


class BatcherHost(Protocol):
    """What the :class:`WriteBatcher` uses of the store it writes for (the
    Redis store has these members: it satisfies this structurally)."""

    @property
    def token(self) -> str: ...

    @property
    def target(self) -> Target: ...

    @property
    def redis(self) -> Any: ...

    @property
    def available(self) -> bool: ...

    @property
    def keys(self) -> Keys: ...

    @property
    def retention(self) -> float: ...

    @property
    def scripts(self) -> Scripts | None: ...

    def outage(self, exc: BaseException) -> None: ...

    def abandon(self, stream: RedisStream) -> None: ...


log = logging.getLogger("twinstream.redis")


@dataclass(eq=False)
class Pending:
    """One stream's events not yet in Redis: from seq ``first``, as appended
    (text deltas still as log records), and whether the last one ends it."""

    stream: RedisStream
    first: int
    items: list[str | bytes] = field(default_factory=list)
    ended: bool = False


class WriteBatcher:
    """Queues appends and writes them: everything appended during one loop
    iteration, or while a write is in flight, goes out in the next single call.

    Its own two markers are not the store's life cycle (``store.state``):
    ``_scheduled`` (a flush is queued with ``call_soon``, so a loop iteration's
    appends join one call) and ``_task`` (the write in flight). Both can be set
    at once (a flush queued while the previous one still waits on Redis), so
    they are kept as they are rather than folded into one enum.

    On an outage the batch in flight is kept, in front of anything newer, and
    written when Redis is back (the script skips what it already holds, so a
    batch retried after a lost reply never duplicates)."""

    def __init__(self, store: BatcherHost) -> None:
        self._store = store
        # stream id -> its pending events; insertion-ordered
        self._pending: dict[str, Pending] = {}
        self._waiters: list[asyncio.Future[bool]] = []
        self._task: asyncio.Task[None] | None = None
        self._scheduled = False
        self.repaired = 0  # streams whose lost tail was written again (failovers)

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._pending

    def enqueue(self, stream: RedisStream, seq: int, item: str | bytes, terminal: bool) -> None:
        """Queue an event appended here (called by RedisStream). While Redis is
        unreachable it is shown at once (and written when Redis is back, if it
        still takes it)."""
        pending = self._pending.get(stream.id)
        if pending is None:
            self._pending[stream.id] = Pending(stream, seq, [item], terminal)
        else:
            pending.items.append(item)
            pending.ended = terminal
        if not self._store.available:
            stream.confirm(seq)
        elif not self._scheduled and self._task is None:
            self._schedule()

    def drop(self, stream_id: str) -> None:
        """Forget what is pending for a stream (it is no longer written)."""
        self._pending.pop(stream_id, None)

    def resume(self) -> None:
        """Redis is back: write what waited for it."""
        if self._pending:
            self._schedule()

    def stop(self) -> None:
        """Cancel the write in flight (the store is closing)."""
        if self._task is not None:
            self._task.cancel()

    def _schedule(self) -> None:
        # Everything appended during this loop iteration goes in one call.
        self._scheduled = True
        asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._task is None and self._pending and self._store.available:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def written(self) -> bool:
        """Wait until everything appended so far is in Redis (False: Redis failed)."""
        if not self._pending and self._task is None:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if not self._scheduled and self._task is None:
            if not self._store.available:
                return False
            self._schedule()
        return await waiter

    async def _flush(self) -> None:
        store = self._store
        try:
            while self._pending and store.available:
                batch, self._pending = self._pending, {}
                waiters, self._waiters = self._waiters, []
                try:
                    await self.write(batch)
                except DOWN as exc:
                    self._keep(batch)
                    _settle(waiters, False)
                    self._task = None
                    store.outage(exc)
                    return
                except RedisError:
                    # A reply that is an error (not an outage) is a bug: say so, and
                    # stop those streams rather than retry the same batch forever.
                    log.exception("Redis refused a batch of %d streams", len(batch))
                    for pending in batch.values():
                        store.abandon(pending.stream)
                    _settle(waiters, False)
                    continue
                _settle(waiters, True)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
        if self._waiters and not self._pending:
            waiters, self._waiters = self._waiters, []
            _settle(waiters, store.available)

    def _keep(self, batch: dict[str, Pending]) -> None:
        """Put a batch that failed back in front of what was appended since."""
        for stream_id, newer in self._pending.items():
            if stream_id in batch:
                batch[stream_id].items.extend(newer.items)
                batch[stream_id].ended = newer.ended
            else:
                batch[stream_id] = newer
        self._pending = batch

    async def write(self, batch: dict[str, Pending]) -> None:
        """One script call per hash slot group (one Redis: one call for the whole
        batch; a cluster: the calls pipelined, one round trip per node), each
        stream fenced by its own owner and epoch. Each stream's events are
        expanded to JSON here, once: what Redis is sent is what this process's
        followers are given when the write is confirmed."""
        store = self._store
        keys, token, target = store.keys, store.token, store.target
        head: list[str | bytes | int] = [token, int(store.retention * 1000), target.publish]
        # slot -> (keys, args, the streams in call order with their texts)
        calls: dict[int, tuple[list[str], list[str | bytes | int], list[Any]]] = {}
        for stream_id, pending in batch.items():
            expanded = pending.stream.expand(pending.first, pending.items)
            stream_key = keys.stream(stream_id)
            call = calls.get(slot := target.slot(stream_key))
            if call is None:
                call = calls[slot] = ([], list(head), [])
            redis_keys, args, written = call
            redis_keys.append(stream_key)
            redis_keys.append(keys.meta(stream_id))
            args.append(keys.channel(stream_id))
            args.append(pending.first)
            args.append(len(expanded))
            args.append("1" if pending.ended else "0")
            args.append(pending.stream.epoch)
            args.extend(expanded)
            written.append((pending, expanded))
        assert store.scripts is not None
        replies = await store.scripts.append_groups(
            store.redis, [(k, a) for k, a, _ in calls.values()]
        )
        for (_, _, written), refusals in zip(calls.values(), replies):
            refused = {
                int(refusals[i]) - 1: int(refusals[i + 1]) for i in range(0, len(refusals), 2)
            }
            for index, (pending, texts) in enumerate(written):
                code = refused.get(index)
                if code is None:
                    pending.stream.confirm(pending.first + len(texts) - 1, texts)
                elif code == FENCED:
                    # Declared dead (our lease lapsed) or ended by another: stop writing it.
                    store.abandon(pending.stream)
                else:
                    self._rewrite(pending, code)

    def _rewrite(self, pending: Pending, last: int) -> None:
        """Redis holds the stream only up to ``last`` (a failover lost its tail):
        write again, from this process's own log, everything after it."""
        stream = pending.stream
        log.warning(
            "stream log in Redis ends at %d, before %d: writing its tail again",
            last,
            pending.first,
        )
        again = Pending(stream, last + 1, stream.items(last + 1, pending.first), False)
        again.items.extend(pending.items)
        again.ended = pending.ended
        newer = self._pending.pop(stream.id, None)
        if newer is not None:
            again.items.extend(newer.items)
            again.ended = newer.ended
        self._pending = {stream.id: again, **self._pending}
        self.repaired += 1


def _settle(waiters: list[asyncio.Future[bool]], result: bool) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(result)
