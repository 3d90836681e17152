"""The resume rule as both transports apply it: open the stream, check where the
client stands, count the answer. One function, so ``/sse`` (``Last-Event-ID``) and
``/ws`` (``resume``) cannot drift apart."""

from __future__ import annotations

from ..core.log import StreamLog
from ..core.store import StreamStore
from ..metrics import Metrics
from ..wire import errors, events


async def open_for_resume(
    store: StreamStore, metrics: Metrics, transport: str, stream_id: str, after: int, position: str
) -> StreamLog | None:
    """The stream to follow after ``after``, or None when it ended and every event
    was delivered (a result, not an error). Raises ProtocolError ``stream_not_found``
    (404) or ``invalid_<position>`` (400), naming the stream. Every answer is
    counted in ``twinstream_resumes_total``."""
    try:
        stream = await store.open(stream_id)
        if stream is None:
            raise errors.stream_not_found()
        if after > stream.last_seq and getattr(stream, "shared", False):
            # A shared store's log never ends before an event it showed a client,
            # unless a failover lost its end (docs/architecture.md, Redis Cluster).
            raise errors.stream_truncated()
        if not events.check_resume(stream.last_seq, stream.ended, after, position):
            metrics.resume(transport, "stream_ended")
            return None
    except errors.ProtocolError as exc:
        metrics.resume(transport, exc.code)
        exc.stream = stream_id
        raise
    metrics.resume(transport, "resumed", stream)
    return stream
