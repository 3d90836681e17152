"""One timer for every connection: write deadlines, SSE heartbeats and WebSocket
keepalive pings (a task or timer per connection would cost more memory than the
connection's own objects)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Protocol

__all__ = ["ConnectionWatch", "Watched"]


class Watched(Protocol):
    """What the watch asks of a connection's writer (:class:`~server.core.relay.Sink`)."""

    heartbeat: bytes | None
    ping: bytes | None
    wrote: bool
    idle_since: float

    def check_progress(self, now: float, write_timeout: float) -> None: ...

    def beat(self) -> None: ...

    def keepalive(self) -> bool: ...


class ConnectionWatch:
    """Write deadlines, heartbeats and keepalive pings for every connection,
    on one timer (a task or timer per connection would cost more memory than
    the connection's own objects)."""

    def __init__(self, write_timeout: float, heartbeat: float, ping_interval: float) -> None:
        self.write_timeout = write_timeout
        self.heartbeat = heartbeat
        self.ping_interval = ping_interval
        # A tick of an eighth of the shortest period: a deadline, a heartbeat
        # or a ping is late by at most that much.
        periods = [p / 8 for p in (write_timeout, heartbeat, ping_interval) if p > 0]
        self.tick = max(0.001, min([1.0, *periods]))
        self.blocked: set[Watched] = set()
        self.beating: set[Watched] = set()
        #: sinks that ping, each with when its next ping is due; all share one
        #: interval, so insertion order is due order and a tick stops at the
        #: first not due
        self.pinging: dict[Watched, float] = {}
        self.relays = 0  # relays open now (shutdown waits for 0)
        #: event-stream responses not yet wholly sent and WebSockets not yet closed
        #: (shutdown waits for 0: a response cut before its last chunk is incomplete)
        self.connections = 0
        #: open /sse and /ws handlers, told on drain to end their readers the way the store
        #: allows (sent elsewhere with a shared store, read to the end with the memory store)
        self.drainable: weakref.WeakSet[Any] = weakref.WeakSet()
        self.slow_consumers = 0  # connections cut as slow consumers so far
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_running(self) -> None:
        if self._timer is None:
            self._loop = asyncio.get_running_loop()
            self._timer = self._loop.call_later(self.tick, self._run)

    def _run(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for sink in list(self.blocked):
            sink.check_progress(now, self.write_timeout)
        if self.heartbeat > 0:
            for sink in list(self.beating):
                if sink.wrote:
                    sink.wrote = False
                    sink.idle_since = now
                elif now - sink.idle_since >= self.heartbeat:
                    sink.beat()
                    sink.wrote = False
                    sink.idle_since = now
        if self.pinging:
            self._ping_due(now)
        if self.blocked or self.beating or self.pinging:
            self._timer = self._loop.call_later(self.tick, self._run)
        else:
            self._timer = None

    def _ping_due(self, now: float) -> None:
        due = []
        for sink, at in self.pinging.items():
            if at > now:
                break
            due.append(sink)
        for sink in due:
            del self.pinging[sink]
            if sink.keepalive():
                self.pinging[sink] = now + self.ping_interval

    def register(self, sink: Watched) -> None:
        if sink.heartbeat is not None and self.heartbeat > 0:
            self.beating.add(sink)
            sink.idle_since = asyncio.get_running_loop().time()
            self._ensure_running()
        if sink.ping is not None and self.ping_interval > 0:
            self.pinging[sink] = asyncio.get_running_loop().time() + self.ping_interval
            self._ensure_running()

    def unregister(self, sink: Watched) -> None:
        self.blocked.discard(sink)
        self.beating.discard(sink)
        self.pinging.pop(sink, None)

    def mark_blocked(self, sink: Watched) -> None:
        self.blocked.add(sink)
        self._ensure_running()

    async def wait_idle(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no relay is open and every
        event-stream response and WebSocket counted in :attr:`connections` ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.relays or self.connections) and loop.time() < deadline:
            await asyncio.sleep(0.01)
