"""Pub/sub for the store: the channels its mirrors and control messages travel on.

One Redis: one connection with ``SUBSCRIBE``, events published with ``PUBLISH``.
A cluster: sharded pub/sub (Redis 7), ``SSUBSCRIBE`` on one connection per
master, events published with ``SPUBLISH`` inside the append script, so a
message goes only to the shard that holds its stream (a plain ``PUBLISH`` on a
cluster is relayed to every node over the cluster bus).

Why not redis-py's ``ClusterPubSub``: its sharded reader polls the per-node
connections in turn (``get_sharded_message`` with a timeout), and it holds the
node's I/O lock while it reads, so a reader that blocks starves ``SSUBSCRIBE``
and a reader that polls adds its slice to every message's delay. Here each
node's connection has its own listener task that blocks on it, and
``SSUBSCRIBE`` is written while it reads, as with one Redis.

Topology: a channel is subscribed on the master its slot maps to now; when
the slot moves (a failover, a resharding) Redis ends the subscription with a
``sunsubscribe`` that was not asked for, and the channel is subscribed again
where its slot now lives (then :attr:`Bus.on_moved` is told, so a mirror can
read what it may have missed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from .connection import DOWN
from .routes import Routes

__all__ = ["Bus"]

log = logging.getLogger("twinstream.redis")

_MESSAGES = ("message", "smessage")
_SUBSCRIBED = ("subscribe", "ssubscribe")
_UNSUBSCRIBED = ("unsubscribe", "sunsubscribe")


class _Line:
    """One pub/sub connection and its listener."""

    def __init__(self, bus: Bus, name: str, pubsub: Any, client: Any = None) -> None:
        self.bus = bus
        self.name = name
        self.pubsub = pubsub
        self.client = client  # the node's own client (a cluster), closed with the line
        self.task: asyncio.Task[None] | None = None
        self.confirming: dict[str, asyncio.Future[None]] = {}
        self.leaving: set[str] = set()  # unsubscribed by us: their sunsubscribe is expected
        self._connecting = asyncio.Lock()

    async def subscribe(self, channel: str) -> None:
        if self.pubsub.connection is None:
            # One connection: redis-py's PubSub makes one per concurrent first
            # command otherwise, and reads only the last.
            async with self._connecting:
                if self.pubsub.connection is None:
                    await self.pubsub.connect()
        done = asyncio.get_running_loop().create_future()
        self.confirming[channel] = done
        self.leaving.discard(channel)
        try:
            if self.bus.target.cluster:
                await self.pubsub.ssubscribe(channel)
            else:
                await self.pubsub.subscribe(channel)
            if self.task is None:
                self.task = asyncio.get_running_loop().create_task(self.listen())
            # The confirmation comes through the listener, in order with the messages.
            await asyncio.wait_for(done, timeout=5.0)
        finally:
            if self.confirming.get(channel) is done:
                del self.confirming[channel]

    async def unsubscribe(self, channel: str) -> None:
        self.leaving.add(channel)
        if self.bus.target.cluster:
            await self.pubsub.sunsubscribe(channel)
        else:
            await self.pubsub.unsubscribe(channel)

    async def listen(self) -> None:
        try:
            while True:
                message = await self.pubsub.get_message(timeout=None)
                if message is not None:
                    self.bus.dispatch(self, message["type"], message["channel"], message["data"])
        except asyncio.CancelledError:
            raise
        except DOWN as exc:
            self.bus.down(self, exc)
        except Exception as exc:  # e.g. a half-closed connection inside redis-py
            log.exception("pub/sub listener failed")
            self.bus.down(self, exc)

    async def close(self) -> None:
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose(close_connection_pool=True)


class Bus:
    """The store's pub/sub. ``on_message(channel, data)`` gets every message;
    ``on_down(exc)`` is told when a connection fails (an outage); ``on_moved
    (channel)`` when a channel was subscribed again on another node."""

    def __init__(
        self,
        routes: Routes,
        on_message: Callable[[str, str], None],
        on_down: Callable[[BaseException], None],
        on_moved: Callable[[str], None],
        rescue_timeout: float,
    ) -> None:
        self.routes = routes
        self.target = routes.target
        self.redis = routes.redis
        self.rescue_timeout = rescue_timeout
        self.on_message = on_message
        self.on_down = on_down
        self.on_moved = on_moved
        self._lines: dict[str, _Line] = {}
        self._where: dict[str, _Line] = {}  # channel -> the line it is subscribed on
        self.closed = False

    def __contains__(self, channel: str) -> bool:
        return channel in self._where

    def _line_for(self, channel: str) -> _Line:
        if not self.target.cluster:
            name = "redis"
            line = self._lines.get(name)
            if line is None:
                line = self._lines[name] = _Line(self, name, self.redis.pubsub())
            return line
        node = self.redis.get_node_from_key(channel)
        line = self._lines.get(node.name)
        if line is None:
            client = self.target.node_client(node.host, node.port)
            line = self._lines[node.name] = _Line(self, node.name, client.pubsub(), client)
        return line

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait for the confirmation (so nothing published after
        this returns is missed)."""
        line = self._line_for(channel)
        self._where[channel] = line
        try:
            await line.subscribe(channel)
        except DOWN:
            if self._where.get(channel) is line:
                del self._where[channel]
            if self.target.cluster and line not in self._where.values():
                self._drop(line)  # a node that cannot be reached: a new line next time
            raise

    def _drop(self, line: _Line) -> None:
        if self._lines.get(line.name) is line:
            del self._lines[line.name]
        asyncio.get_running_loop().create_task(line.close())

    async def unsubscribe(self, channel: str) -> None:
        line = self._where.pop(channel, None)
        if line is not None:
            await line.unsubscribe(channel)

    async def publish(self, channel: str, data: str) -> None:
        if self.target.cluster:
            await self.redis.spublish(channel, data)
        else:
            await self.redis.publish(channel, data)

    def dispatch(self, line: _Line, kind: str, channel: str, data: Any) -> None:
        if kind in _MESSAGES:
            self.on_message(channel, data)
        elif kind in _SUBSCRIBED:
            done = line.confirming.get(channel)
            if done is not None and not done.done():
                done.set_result(None)
        elif kind in _UNSUBSCRIBED:
            if channel in line.leaving:
                line.leaving.discard(channel)
            elif self._where.get(channel) is line:
                # Not asked for: the slot moved. Subscribe where it lives now.
                asyncio.get_running_loop().create_task(self._follow(channel))

    async def _follow(self, channel: str) -> None:
        del self._where[channel]
        try:
            await self.routes.refresh(every=0)  # the new slot map
            await self.subscribe(channel)
        except DOWN as exc:
            self.on_down(exc)
            return
        self.on_moved(channel)

    def down(self, line: _Line, exc: BaseException) -> None:
        """A connection failed. One Redis: an outage. A cluster: a node failed;
        its channels are subscribed again where their slots live once its
        replica has taken over (then each is reported to ``on_moved``, so what
        was published meanwhile is read)."""
        if self.closed:
            return
        if not self.target.cluster:
            self.on_down(exc)
            return
        channels = [channel for channel, where in self._where.items() if where is line]
        for channel in channels:
            del self._where[channel]
        self._drop(line)
        self.on_down(exc)  # the store watches the failover
        asyncio.get_running_loop().create_task(self._rescue(channels, exc))

    async def _rescue(self, channels: list[str], exc: BaseException) -> None:
        give_up = time.monotonic() + self.rescue_timeout
        waiting = list(channels)
        while waiting and not self.closed:
            await self.routes.refresh()
            try:
                while waiting:
                    channel = waiting[0]
                    if channel not in self._where:
                        await self.subscribe(channel)
                    waiting.pop(0)
                    self.on_moved(channel)
            except DOWN:
                if time.monotonic() > give_up:
                    self.on_down(exc)
                    return
                await asyncio.sleep(0.25)

    async def close(self) -> None:
        self.closed = True
        lines, self._lines = list(self._lines.values()), {}
        self._where.clear()
        for line in lines:
            await line.close()
