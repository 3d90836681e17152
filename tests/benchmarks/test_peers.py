"""The reference servers' shared event code: the same events and stamps as twinstream's."""

from __future__ import annotations

import time

from support.watched_backend import Watched

from benchmarks.peers import completion_events
from server.backends.synthetic import SyntheticBackend, synthetic_tokens
from server.config import Settings


async def test_reference_events_are_twinstreams_with_deltas_timed_at_release() -> None:
    backend = SyntheticBackend.from_settings(
        Settings(tokens_per_second=200, first_token_latency=0.01)
    )
    before = time.time()
    events = []
    async for event in completion_events(backend, "S", "stamp me", 4):
        if event["type"] == "delta":
            # read before anything is awaited: the piece this event came from
            assert event["t"] == round(backend.piece_time(), 6)
        events.append(event)
    assert [e["type"] for e in events] == ["start"] + ["delta"] * 4 + ["done"]
    assert [e["seq"] for e in events] == list(range(6))
    assert "".join(e["content"] for e in events[1:5]) == "".join(synthetic_tokens("stamp me")[:4])
    stamps = [e["t"] for e in events]
    assert before - 1e-6 <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= time.time()


async def test_reference_events_close_the_model_generator_themselves() -> None:
    """As twinstream's streams do: neither leaves it to asyncio's finaliser hook."""
    backend = Watched()
    seen_at_done = None
    async for event in completion_events(backend, "S", "close me", 3):
        if event["type"] == "done":
            seen_at_done = list(backend.closed)
    # still open when the done event was handed out; closed when the events end,
    # with no loop turn in between
    assert seen_at_done == [] and backend.closed == ["close me"]
