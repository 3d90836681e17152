"""The write batcher: every append of this process's streams goes to Redis in
batches, one round trip per node (:mod:`.writer`), so round trips do not grow
with the event rate. On a cluster a node that fails holds back only its own
streams, which are written once its replica has taken over."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from .connection import DOWN, Target
from .keys import Keys
from .routes import Routes
from .scripts import Scripts
from .stream import RedisStream
from .writer import NodeBatch, NodeTrouble, Outcome, Pending, write_all

__all__ = ["BatcherHost", "Pending", "WriteBatcher"]


class BatcherHost(Protocol):
    """What the :class:`WriteBatcher` uses of the store it writes for (the
    Redis store has these members: it satisfies this structurally)."""

    @property
    def token(self) -> str: ...

    @property
    def target(self) -> Target: ...

    @property
    def routes(self) -> Routes: ...

    @property
    def wait_ms(self) -> int: ...

    @property
    def failover_timeout(self) -> float: ...

    @property
    def batch_interval(self) -> float: ...

    def give_up(self, stream: RedisStream) -> None: ...

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

#: Seconds before the streams of a node that failed are tried again.
RETRY_AFTER = 0.2


class WriteBatcher:
    """Queues appends and writes them: everything appended during one loop
    iteration, while a write is in flight, or within ``batch_interval`` of the
    last batch's start, goes out in the next single call.

    Its one marker, ``_task``, is not the store's life cycle (``store.state``):
    the flush task, created at the first append while none runs. Its first
    step runs on the next loop iteration, after every callback of this one, so
    that iteration's appends join one call; it then writes whatever was
    appended while each write was in flight, until nothing is left. (An
    earlier version queued a callback that created the task: one loop
    iteration more between an append and its write, which a loop saturated by
    a thousand streams makes tens of milliseconds.)

    On an outage the batch in flight is kept, in front of anything newer, and
    written when Redis is back (the script skips what it already holds, so a
    batch retried after a lost reply never duplicates)."""

    def __init__(self, store: BatcherHost) -> None:
        self._store = store
        # stream id -> its pending events; insertion-ordered
        self._pending: dict[str, Pending] = {}
        self._waiters: list[asyncio.Future[bool]] = []
        self._task: asyncio.Task[None] | None = None
        self.repaired = 0  # streams whose lost tail was written again (failovers)
        self.flushes = 0  # batches sent (a batch is one round trip per node)
        self._confirmed: list[tuple[Pending, list[bytes]]] = []  # written, to be shown
        # streams shown from memory (their node stayed down): written if it comes back
        self.from_memory: set[str] = set()
        # node -> (failing since, next try): a cluster node that did not take its batch
        self._parked: dict[str, tuple[float, float]] = {}
        self._last_start = -1e9  # when the last batch was taken (monotonic seconds)

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
        if not self._store.available or stream.id in self.from_memory:
            stream.confirm(seq)
        elif self._task is None:
            self._schedule()

    def drop(self, stream_id: str) -> None:
        """Forget what is pending for a stream (it is no longer written)."""
        self._pending.pop(stream_id, None)
        self.from_memory.discard(stream_id)

    def resume(self) -> None:
        """Redis is back: write what waited for it."""
        if self._pending:
            self._schedule()

    def stop(self) -> None:
        """Cancel the write in flight (the store is closing)."""
        if self._task is not None:
            self._task.cancel()

    def _schedule(self) -> None:
        # Everything appended during this loop iteration goes in one call: the
        # task's first step runs on the next one.
        if self._task is None and self._store.available:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def written(self) -> bool:
        """Wait until everything appended so far was sent to Redis (False: some
        of it could not be written: Redis, or a node of the cluster, failed)."""
        if not self._pending and self._task is None:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._task is None:
            if not self._store.available:
                return False
            self._schedule()
        return await waiter

    async def _flush(self) -> None:
        store = self._store
        try:
            while self._pending and store.available:
                # At most one batch per batch_interval: under load each round trip
                # carries more events (a script call per node per batch is what
                # costs: a send, a reply and a wake-up each, three of each on a
                # three-master cluster). After a quiet spell the wait is over
                # already, so a lone append is sent at once.
                rest = self._last_start + store.batch_interval - time.monotonic()
                if rest > 0:
                    await asyncio.sleep(rest)
                    if not (self._pending and store.available):
                        break
                self._last_start = time.monotonic()
                batch = self._take_writable()
                waiters, self._waiters = self._waiters, []
                if not batch:
                    _settle(waiters, False)  # all that is left waits for a node
                    break
                self.flushes += 1
                try:
                    complete = await self.write(batch)
                except DOWN as exc:  # one Redis, unreachable: an outage
                    self._keep(batch)
                    _settle(waiters, False)
                    self._task = None
                    store.outage(exc)
                    return
                # After the delivery that write() queued (call_soon keeps the order).
                asyncio.get_running_loop().call_soon(_settle, waiters, complete)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
        if self._waiters and not self._pending:
            waiters, self._waiters = self._waiters, []
            asyncio.get_running_loop().call_soon(_settle, waiters, store.available)
        if self._pending and store.available:
            # Streams of a node that failed: try again once it may have been replaced.
            asyncio.get_running_loop().call_later(RETRY_AFTER, self._retry)

    def _retry(self) -> None:
        if self._pending and self._task is None:
            self._schedule()

    def _take_writable(self) -> dict[str, Pending]:
        """The pending streams whose node is not waiting out a failure."""
        batch: dict[str, Pending] = {}
        if not self._parked:
            batch, self._pending = self._pending, batch
            return batch
        now = time.monotonic()
        keep: dict[str, Pending] = {}
        routes, keys = self._store.routes, self._store.keys
        for stream_id, pending in self._pending.items():
            parked = self._parked.get(routes.node_of(keys.stream(stream_id)))
            if parked is not None and now < parked[1]:
                keep[stream_id] = pending
            else:
                batch[stream_id] = pending
        self._pending = keep
        return batch

    def _keep(self, batch: dict[str, Pending]) -> None:
        """Put a batch that failed back in front of what was appended since."""
        for stream_id, newer in self._pending.items():
            if stream_id in batch:
                batch[stream_id].items.extend(newer.items)
                batch[stream_id].ended = newer.ended
            else:
                batch[stream_id] = newer
        self._pending = batch

    async def write(self, batch: dict[str, Pending]) -> bool:
        """Send a batch: per node one pipeline of one script call per hash slot
        group, all nodes at once, each stream fenced by its own owner and
        epoch. Each stream's events are expanded to JSON here, once: what Redis
        is sent is what this process's followers are given when it is confirmed.
        True if every stream was written (or refused for good)."""
        store = self._store
        routes, keys, target = store.routes, store.keys, store.target
        nodes: dict[str, NodeBatch] = {}
        for stream_id, pending in batch.items():
            stream_key = keys.stream(stream_id)
            node = routes.node_of(stream_key)
            node_batch = nodes.get(node)
            if node_batch is None:
                node_batch = nodes[node] = NodeBatch(node)
            texts = pending.stream.expand(pending.first, pending.items)
            node_batch.add(store, pending, texts, target.slot(stream_key))
        assert store.scripts is not None
        outcomes = await write_all(store, routes, store.scripts.append.sha, list(nodes.values()))
        complete = True
        for node_batch, outcome in zip(nodes.values(), outcomes):
            if isinstance(outcome, BaseException):
                if not target.cluster and isinstance(outcome, DOWN):
                    raise outcome
                if not isinstance(outcome, (NodeTrouble, *DOWN)):
                    # A reply that is an error, not an outage, is a bug: say so, and
                    # stop those streams rather than retry the same batch forever.
                    log.error("Redis refused a batch", exc_info=outcome)
                    for pending in node_batch.streams():
                        store.abandon(pending.stream)
                    continue
                complete = False
                await self._node_failed(node_batch, outcome)
                continue
            self._parked.pop(node_batch.node, None)
            self._settle_outcome(outcome)
        if self._confirmed:
            # Shown on the next loop iteration: this task sends the next batch
            # first, so Redis's round trip overlaps the delivery's socket writes
            # (delivered here, a large batch held back everything appended
            # meanwhile, which then went as a larger batch, delivered later...).
            confirmed, self._confirmed = self._confirmed, []
            asyncio.get_running_loop().call_soon(_deliver, confirmed)
        return complete

    def _settle_outcome(self, outcome: Outcome) -> None:
        store = self._store
        self._confirmed += outcome.confirmed
        for pending in outcome.fenced:
            # Declared dead (our lease lapsed) or ended by another: stop writing it.
            store.abandon(pending.stream)
        for pending in outcome.broken:
            store.abandon(pending.stream)
        for pending, last in outcome.gaps:
            self._rewrite(pending, last)

    async def _node_failed(self, node_batch: NodeBatch, exc: BaseException) -> None:
        """A node did not take its batch: keep it, wait a moment, ask the cluster
        where its slots live now. Past ``failover_timeout`` its streams end with
        ``store_unavailable`` (shown from memory, written if Redis takes them later)."""
        store = self._store
        now = time.monotonic()
        since = self._parked.get(node_batch.node, (now, now))[0]
        self._parked[node_batch.node] = (since, now + RETRY_AFTER)
        self._keep({pending.stream.id: pending for pending in node_batch.streams()})
        if now - since < 0.01:
            log.warning("Redis node %s failed (%s); retrying", node_batch.node, exc)
        await store.routes.forget(node_batch.node)
        await store.routes.refresh()
        if now - since > store.failover_timeout:
            for pending in node_batch.streams():
                store.give_up(pending.stream)

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


def _deliver(confirmed: list[tuple[Pending, list[bytes]]]) -> None:
    """Show written events to their streams' followers."""
    for pending, texts in confirmed:
        pending.stream.confirm(pending.first + len(texts) - 1, texts)


def _settle(waiters: list[asyncio.Future[bool]], result: bool) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(result)
