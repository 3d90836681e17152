"""One flush, as Redis is sent it: per node, one pipeline on one connection
holding one append-script call per hash slot group (never a script across
slots), then, with ``--redis-wait-ms``, ``WAIT 1 <ms>`` and the publications
(so nothing reaches any reader before a replica holds it). The nodes are
written at once; one that fails (down, its slot moved, no replica in time)
fails only its own streams, which the batcher keeps and writes again."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from .connection import DOWN, WRITE_TIMEOUT, Call, Link, Target
from .keys import Keys, tagged
from .routes import Routes
from .scripts import APPEND_LUA, FENCED
from .stream import RedisStream

__all__ = ["NodeBatch", "NodeTrouble", "Outcome", "Pending", "WriterHost", "write_node"]

log = logging.getLogger("twinstream.redis")
T = TypeVar("T")

#: Replies that say "not here, not now" (the slot moved or is moving, the node
#: is down, loading or became a replica): the batch is written again later.
#: (MovedError is an AskError.)
MOVING = (AskError, ClusterDownError, TryAgainError, ReadOnlyError, BusyLoadingError)


class WriterHost(Protocol):
    @property
    def keys(self) -> Keys: ...

    @property
    def target(self) -> Target: ...

    @property
    def retention(self) -> float: ...

    @property
    def wait_ms(self) -> int: ...


@dataclass(eq=False)
class Pending:
    """One stream's events not yet in Redis: from seq ``first``, as appended
    (text deltas still as log records), and whether the last one ends it."""

    stream: RedisStream
    first: int
    items: list[str | bytes] = field(default_factory=list)
    ended: bool = False


class NodeTrouble(Exception):
    """A node's batch was not written (or not replicated in time): keep it, try again."""


@dataclass
class NodeBatch:
    """One node's share of a flush: per slot, (keys, args, the streams' texts)."""

    node: str
    # (slot, owner) -> the script call's keys, its args, and the streams' texts
    calls: dict[tuple[int, str], tuple[list[str], list[Any], list[tuple[Pending, list[bytes]]]]] = (
        field(default_factory=dict)
    )

    def streams(self) -> Iterable[Pending]:
        for _, _, written in self.calls.values():
            for pending, _ in written:
                yield pending

    def add(self, host: WriterHost, pending: Pending, texts: list[bytes], slot: int) -> None:
        keys = host.keys
        owner = pending.stream.owner
        stream_id = pending.stream.id
        call = self.calls.get((slot, owner))
        if call is None:
            publish = "" if host.wait_ms else host.target.publish  # with WAIT: published after
            # One declared key (the slot's); the script makes each stream's keys
            # from its tagged id (APPEND_LUA).
            call = self.calls[slot, owner] = (
                [keys.stream(stream_id)],
                [keys.prefix, owner, _ttl(host), publish],
                [],
            )
        _, args, written = call
        head = f"{tagged(stream_id)} {pending.first} {len(texts)} {1 if pending.ended else 0} "
        args.append(f"{head}{pending.stream.epoch}\n".encode() + b"\n".join(texts))
        written.append((pending, texts))


@dataclass
class Outcome:
    """What a node's batch came to, per stream."""

    confirmed: list[tuple[Pending, list[bytes]]] = field(default_factory=list)
    fenced: list[Pending] = field(default_factory=list)
    gaps: list[tuple[Pending, int]] = field(default_factory=list)
    broken: list[Pending] = field(default_factory=list)  # an error reply: a bug


#: What a node says when a slot of the call left it while the script ran (a
#: resharding moved it, or the cluster lost the slot): the batch is written
#: again once the slot map is asked anew.
_NOT_HERE = ("non local key", "same slot", "cluster is down", "CROSSSLOT")


def _not_here(reply: ResponseError) -> bool:
    text = str(reply)
    return any(words in text for words in _NOT_HERE)


def _ttl(host: WriterHost) -> int:
    return int(host.retention * 1000)


async def write_node(
    host: WriterHost, routes: Routes, sha: str, batch: NodeBatch, sent: Call | None = None
) -> Outcome:
    """Write one node's batch (``sent``: its calls, already written by
    :func:`send_node`). Raises NodeTrouble (or an outage error on one Redis)
    when it must be written again; a node silent for :data:`WRITE_TIMEOUT`
    seconds is an outage (a redis-py TimeoutError)."""
    return await _within(WRITE_TIMEOUT, batch.node, _write_node(host, routes, sha, batch, sent))


async def send_node(host: WriterHost, routes: Routes, sha: str, batch: NodeBatch) -> Call:
    """Write a node's calls without waiting for the replies (:func:`write_node` reads them)."""
    call = _send(routes.link(batch.node), sha, batch, _wait(host, routes, batch))
    return await _within(WRITE_TIMEOUT, batch.node, call)


async def _within(seconds: float, node: str, call: Coroutine[Any, Any, T]) -> T:
    """``await call`` with a deadline; on Python 3.11+ without a task of its own."""
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(seconds):
                return await call
        return await asyncio.wait_for(call, seconds)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise RedisTimeoutError(f"no reply from {node} in {seconds:.0f} s") from exc


def _wait(host: WriterHost, routes: Routes, batch: NodeBatch) -> int:
    # WAIT only where a replica can answer: a master whose replica just took
    # over for it has none (then there is nothing a failover could keep).
    return host.wait_ms if host.wait_ms and not routes.alone(batch.node) else 0


async def _write_node(
    host: WriterHost, routes: Routes, sha: str, batch: NodeBatch, sent: Call | None
) -> Outcome:
    client, link = routes.client(batch.node), routes.link(batch.node)
    wait = _wait(host, routes, batch)
    if sent is None:
        sent = await _send(link, sha, batch, wait)
    replies = await sent.replies()
    if replies and isinstance(replies[0], NoScriptError):
        # A node that has not seen the script (a replica just promoted, a
        # restarted Redis): load it there and run the batch once more.
        await client.script_load(APPEND_LUA)
        replies = await (await _send(link, sha, batch, wait)).replies()
    if wait:
        acks = replies.pop()
        if isinstance(acks, Exception) or int(acks) < 1:
            if await _replicas(client):
                raise NodeTrouble(f"no replica acknowledged within {host.wait_ms} ms")
            routes.mark_alone(batch.node)
    outcome = Outcome()
    for (_, _, written), reply in zip(batch.calls.values(), replies):
        if isinstance(reply, MOVING):
            raise NodeTrouble(f"{type(reply).__name__}: {reply}")
        if isinstance(reply, ResponseError) and _not_here(reply):
            raise NodeTrouble(f"{type(reply).__name__}: {reply}")
        if isinstance(reply, ResponseError):
            log.error("Redis refused a batch: %s", reply)
            outcome.broken += [pending for pending, _ in written]
            continue
        refused = {int(reply[i]) - 1: int(reply[i + 1]) for i in range(0, len(reply), 2)}
        for index, (pending, texts) in enumerate(written):
            code = refused.get(index)
            if code is None:
                outcome.confirmed.append((pending, texts))
            elif code == FENCED:
                outcome.fenced.append(pending)
            else:
                outcome.gaps.append((pending, code))
    if host.wait_ms and outcome.confirmed:
        await _publish(host, client, outcome.confirmed)
    return outcome


async def _replicas(client: Any) -> int:
    """How many replicas the node has (``ROLE``)."""
    role = await client.execute_command("ROLE")
    return len(role[2]) if role and role[0] == "master" else 0


async def _send(link: Link, sha: str, batch: NodeBatch, wait: int) -> Call:
    commands: list[tuple[Any, ...]] = [
        ("EVALSHA", sha, len(redis_keys), *redis_keys, *args)
        for redis_keys, args, _ in batch.calls.values()
    ]
    if wait:
        commands.append(("WAIT", 1, wait))
    return await link.send(commands)


async def _publish(
    host: WriterHost, client: Any, confirmed: list[tuple[Pending, list[bytes]]]
) -> None:
    """With WAIT: the events a replica holds, published (one round trip)."""
    keys, command = host.keys, host.target.publish
    async with client.pipeline(transaction=False) as pipe:
        for pending, texts in confirmed:
            message = f"{pending.first}\n".encode() + b"\n".join(texts)
            pipe.execute_command(command, keys.channel(pending.stream.id), message)
        await pipe.execute(raise_on_error=False)


async def write_all(
    host: WriterHost, routes: Routes, sha: str, batches: list[NodeBatch]
) -> list[Outcome | BaseException]:
    """Every node's batch at once; per node its Outcome or what went wrong.
    Every node's calls are written first, then each node's replies read in
    turn: the round trips overlap, without a task per node."""
    if len(batches) == 1:
        try:
            return [await write_node(host, routes, sha, batches[0])]
        except (NodeTrouble, *DOWN) as exc:
            return [exc]
    started: list[Call | Exception] = []
    for batch in batches:
        try:
            started.append(await send_node(host, routes, sha, batch))
        except Exception as exc:  # kept as that node's outcome
            started.append(exc)
    outcomes: list[Outcome | BaseException] = []
    for batch, sent in zip(batches, started):
        if isinstance(sent, Exception):
            outcomes.append(sent)
            continue
        try:
            outcomes.append(await write_node(host, routes, sha, batch, sent))
        except Exception as exc:  # kept as that node's outcome
            outcomes.append(exc)
    return outcomes
