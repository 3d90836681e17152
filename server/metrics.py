"""The operator's view: Prometheus metrics (``GET /metrics``) and one JSON
log line per stream when it ends.

Handlers report what they do through one :class:`Metrics` object
(``application.settings["metrics"]``), one call per fact: a stream started,
a write of N events and B bytes went to the kernel, a resume was answered.
Per-stream figures (events, bytes, reconnects) are kept in a small record
until the stream ends; then the ``streams_ended`` counter moves and the log
line ``twinstream.stream`` is written. It never holds the prompt, the text,
or the stream id (the id is the right to read the stream).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString

from .core.relay import Frame

__all__ = ["Metrics", "TRANSPORTS"]

stream_log = logging.getLogger("twinstream.stream")

TRANSPORTS = ("sse", "ws", "v1", "responses-sse", "responses-ws", "ai-sse", "ai-ws")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SAMPLE_EVERY = 0.001  # seconds between delivery-delay samples, per transport
#: A relay's framing function: events ``first_seq``... as JSON (bytes) -> wire bytes.
_DELIVERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class _Counted:
    """A relay's frame function that counts what it frames (a slotted object,
    not a closure: one lives as long as each relay). It runs once per write,
    so it holds its transport's totals and its stream's record instead of
    looking them up each time."""

    __slots__ = ("metrics", "frame", "stream", "delivery", "record")

    def __init__(self, metrics: Metrics, frame: Frame, stream: Any, transport: str) -> None:
        self.metrics = metrics
        self.frame = frame
        self.stream = stream
        self.delivery = metrics.delivery[transport]
        # None when there is no record to add to: the stream's end was counted
        # already (a late resume), or it was started by another process (a
        # shared store)
        self.record = metrics._records.get(stream.id)

    def __call__(self, first_seq: int, texts: list[bytes]) -> bytes:
        data = self.frame(first_seq, texts)
        events, nbytes = len(texts), len(data)
        delivery = self.delivery
        delivery.events += events
        delivery.bytes += nbytes
        # The delay is sampled: at most one write a millisecond per transport
        # (reading the event's time costs more than the rest of the count).
        now = time.time()
        if now >= delivery.next_sample and texts:
            delivery.next_sample = now + _SAMPLE_EVERY
            produced = _produced_at(texts[0])
            if produced is not None:
                delivery.observe(now - produced)
        record = self.record
        if record is not None and self.metrics._count(
            self.stream, record, events, nbytes, first_seq + events - 1
        ):
            self.record = None
        return data


@dataclass
class _StreamRecord:
    transport: str
    started: float  # monotonic
    stream: Any
    events: int = 0
    bytes: int = 0
    reconnects: int = 0
    first_token: bool = False
    ended_seen: bool = False
    finished: bool = False  # counted and logged: takes no more writes


def _outcome(stream: Any) -> str:
    """``stop`` / ``length`` / ``cancelled`` for done, ``error:CODE`` for error."""
    try:
        last = stream.last_event()
    except (AttributeError, IndexError, ValueError):
        return "unknown"
    if not isinstance(last, dict):
        return "unknown"
    if last.get("type") == "error":
        return f"error:{last.get('code', 'unknown')}"
    return str(last.get("finish_reason", "unknown"))


def _produced_at(text: bytes) -> float | None:
    """The ``t`` an event's JSON ends with, if any (wall clock: when the event was
    made, or for a delta when the model made its piece available)."""
    at = text.rfind(b'"t":')
    if at < 0:
        return None
    try:
        return float(text[at + 4 : -1])
    except ValueError:
        return None


class _Delivery:
    """One transport's events and bytes sent, and its delivery-delay histogram."""

    __slots__ = ("events", "bytes", "buckets", "sum", "next_sample")

    def __init__(self) -> None:
        self.next_sample = 0.0
        self.events = 0
        self.bytes = 0
        self.buckets = [0] * (len(_DELIVERY_BUCKETS) + 1)  # the last one: +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.buckets[bisect.bisect_left(_DELIVERY_BUCKETS, seconds)] += 1
        self.sum += seconds


class _DeliveryCollector:
    """The per-write figures of :class:`_Delivery` as Prometheus metrics."""

    def __init__(self, delivery: dict[str, _Delivery]) -> None:
        self.delivery = delivery

    def collect(self) -> Iterator[Any]:
        events = CounterMetricFamily(
            "twinstream_events_sent", "Events written to clients", labels=["transport"]
        )
        nbytes = CounterMetricFamily(
            "twinstream_bytes_sent",
            "Event bytes written to clients, as framed by the transport (SSE text, "
            "WebSocket frames) before chunked coding or gzip",
            labels=["transport"],
        )
        delays = HistogramMetricFamily(
            "twinstream_event_delivery_seconds",
            "From an event's t (a delta's: when the model made it available) to its "
            "write to a client (sampled: at most one write per millisecond per transport)",
            labels=["transport"],
        )
        for transport, figures in self.delivery.items():
            events.add_metric([transport], figures.events)
            nbytes.add_metric([transport], figures.bytes)
            cumulative, buckets = 0, []
            for bound, count in zip((*_DELIVERY_BUCKETS, float("inf")), figures.buckets):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            delays.add_metric([transport], buckets, figures.sum)
        yield events
        yield nbytes
        yield delays


class _SlowConsumers:
    """``watch.slow_consumers`` (counted by the relays) as a Prometheus counter."""

    def __init__(self, watch: Any) -> None:
        self.watch = watch

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "twinstream_slow_consumer_disconnects",
            "Connections cut because the client did not keep up (any transport)",
        )
        family.add_metric([], float(getattr(self.watch, "slow_consumers", 0)))
        yield family


class Metrics:
    """Every metric of one server, in its own registry (several apps can live
    in one process, e.g. in tests). ``watch`` is the relays' ConnectionWatch,
    which counts slow-consumer disconnects."""

    def __init__(self, watch: Any = None, sweep_interval: float = 1.0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.open_connections = Gauge(
            "twinstream_open_connections",
            "Connections relaying streams now, per transport",
            ["transport"],
            registry=r,
        )
        self.tcp_connections = Gauge(
            "twinstream_tcp_connections", "Open TCP connections (all endpoints)", registry=r
        )
        self.live_streams = Gauge(
            "twinstream_live_streams",
            "Streams started here that have not ended, per transport that started them",
            ["transport"],
            registry=r,
        )
        self.streams_started = Counter(
            "twinstream_streams_started",
            "Streams started, per transport",
            ["transport"],
            registry=r,
        )
        self.streams_ended = Counter(
            "twinstream_streams_ended",
            "Streams ended, per transport and outcome (stop, length, cancelled, error)",
            ["transport", "outcome"],
            registry=r,
        )
        self.resumes = Counter(
            "twinstream_resumes",
            "Resume requests, per transport and answer (resumed, or the error code: "
            "stream_ended, stream_not_found, ...)",
            ["transport", "answer"],
            registry=r,
        )
        self.errors = Counter(
            "twinstream_errors", "Errors answered, per stable error code", ["code"], registry=r
        )
        self.refused_connections = Counter(
            "twinstream_refused_connections",
            "TCP connections refused or evicted at the edge, per reason",
            ["reason"],
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "twinstream_first_token_seconds",
            "From a stream's start to its first token written to a client",
            ["transport"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        if watch is not None:
            r.register(_SlowConsumers(watch))
        # Counted on every write: plain numbers here, turned into metrics only
        # when scraped (a prometheus_client Counter takes a lock per inc).
        self.delivery = {t: _Delivery() for t in TRANSPORTS}
        r.register(_DeliveryCollector(self.delivery))
        # Every series exists from the start, at 0; the children counted once
        # per connection or stream are looked up here, not on each count.
        self._open = {t: self.open_connections.labels(t) for t in TRANSPORTS}
        self._live = {t: self.live_streams.labels(t) for t in TRANSPORTS}
        self._started = {t: self.streams_started.labels(t) for t in TRANSPORTS}
        self._first_token = {t: self.first_token_seconds.labels(t) for t in TRANSPORTS}
        self._records: dict[str, _StreamRecord] = {}
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.TimerHandle | None = None

    # -- what handlers report ----------------------------------------------------

    def stream_started(self, stream: Any, transport: str) -> None:
        self._started[transport].inc()
        self._live[transport].inc()
        self._records[stream.id] = _StreamRecord(transport, time.monotonic(), stream)
        self._arm_sweeper()

    def connection_opened(self, transport: str) -> None:
        """A connection started relaying streams (closed: :meth:`connection_closed`)."""
        self._open[transport].inc()

    def connection_closed(self, transport: str) -> None:
        self._open[transport].dec()

    def counting(self, frame: Frame, stream: Any, transport: str) -> Frame:
        """``frame`` (a relay's events-to-bytes function), counting what it frames:
        every batch it makes is written to the connection at once."""
        return _Counted(self, frame, stream, transport)

    def _count(
        self, stream: Any, record: _StreamRecord, events: int, nbytes: int, through_seq: int
    ) -> bool:
        """Add a write to the stream's record; True once its last event went out
        (the record is finished then and takes no more writes; its counter and
        log line follow). A record finished already (by another relay of the
        stream, or by the sweep) takes nothing more."""
        if record.finished:
            return True
        record.events += events
        record.bytes += nbytes
        if not record.first_token and through_seq >= 1:
            record.first_token = True
            self._first_token[record.transport].observe(time.monotonic() - record.started)
        if through_seq >= stream.last_seq and stream.ended:
            record.finished = True
            # Called while the terminal event is framed, before it is written:
            # the bookkeeping (counters, the log line's write) waits for the
            # next loop turn so that the event leaves first.
            try:
                asyncio.get_running_loop().call_soon(self._finish, stream.id, record)
            except RuntimeError:  # no event loop (a synchronous caller)
                self._finish(stream.id, record)
            return True
        return False

    def answered(self, stream: Any, transport: str, nbytes: int) -> None:
        """A whole answer (``/v1`` without streaming) of ``nbytes`` was written."""
        events = stream.last_seq + 1
        delivery = self.delivery[transport]
        delivery.events += events
        delivery.bytes += nbytes
        record = self._records.get(stream.id)
        if record is not None:
            self._count(stream, record, events, nbytes, stream.last_seq)

    def resume(self, transport: str, answer: str, stream: Any = None) -> None:
        """A resume request answered ``answer``: ``resumed`` or an error code."""
        self.resumes.labels(transport, answer).inc()
        if answer == "resumed" and stream is not None:
            record = self._records.get(stream.id)
            if record is not None:
                record.reconnects += 1

    def error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def refused_connection(self, reason: str, count: int = 1) -> None:
        self.refused_connections.labels(reason).inc(count)

    # -- ends ----------------------------------------------------------------------

    def _finish(self, stream_id: str, record: _StreamRecord) -> None:
        if self._records.pop(stream_id, None) is None:
            return
        record.finished = True
        outcome = _outcome(record.stream)
        label = outcome.split(":", 1)[0]
        self.streams_ended.labels(record.transport, label).inc()
        self._live[record.transport].dec()
        if not stream_log.isEnabledFor(logging.INFO):
            return
        line = {
            "event": "stream_end",
            "transport": record.transport,
            "duration_s": round(time.monotonic() - record.started, 3),
            "events": record.events,
            "bytes": record.bytes,
            "reconnects": record.reconnects,
            "outcome": outcome,
        }
        stream_log.info(json.dumps(line, separators=(",", ":")))

    def sweep(self, final: bool = False) -> None:
        """End the records of streams that ended but whose terminal event no
        relay wrote (nobody was reading): seen ended on two sweeps in a row, so
        a relay still writing the end gets to count it first."""
        for stream_id, record in list(self._records.items()):
            if record.stream.ended:
                if record.ended_seen or final:
                    self._finish(stream_id, record)
                record.ended_seen = True

    def _arm_sweeper(self) -> None:
        if self._sweeper is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sweeper = loop.call_later(self._sweep_interval, self._sweep_tick)

    def _sweep_tick(self) -> None:
        self._sweeper = None
        self.sweep()
        if self._records:  # re-armed only while there is something to watch
            self._arm_sweeper()

    def close(self) -> None:
        """Write the end of every stream still recorded (at shutdown)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self.sweep(final=True)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
