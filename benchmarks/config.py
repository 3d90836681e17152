"""How big a run is: one :class:`SuiteConfig` per preset (tiny for tests, quick, full)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["SuiteConfig", "TINY", "QUICK", "FULL", "PRESETS"]


@dataclass(frozen=True)
class SuiteConfig:
    """Every knob of a run. Token rates apply to the synthetic model of every
    server the suite starts (twinstream and the peers alike)."""

    name: str
    #: pacing of the synthetic model, tokens/s per stream (0 = unthrottled)
    tokens_per_second: float = 30.0
    #: the synthetic model's wait before the first token, seconds
    first_token_latency: float = 0.25
    # -- latency
    latency_samples: int = 10  # single-stream completions per transport, cold and warm each
    latency_max_tokens: int = 12
    latency_concurrency: int = 100  # streams at once for "latency under load"
    concurrent_max_tokens: int = 40
    # -- throughput
    sweep: tuple[int, ...] = (1, 10, 100)
    sweep_max_tokens: int = 90
    unthrottled_seconds: float = 2.0
    wire_streams: int = 5
    # -- reconnection
    reconnect_streams: int = 10  # streams per transport
    #: streams in flight at once per transport; the proxy and these clients share one
    #: process, which must stay far from busy for recovery times to mean anything
    reconnect_concurrency: int = 10
    reconnect_cuts: int = 6  # cuts per stream, alternating server side / client side
    reconnect_max_tokens: int = 120
    # -- load generation
    workers: int = 2  # client processes
    ramp_per_stream: float = 0.002  # seconds between stream starts under load
    seed: int = 5

    def replace(self, **changes: Any) -> SuiteConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TINY = SuiteConfig(
    name="tiny",
    tokens_per_second=0.0,
    first_token_latency=0.0,
    latency_samples=2,
    latency_max_tokens=6,
    latency_concurrency=4,
    concurrent_max_tokens=8,
    sweep=(1, 3),
    sweep_max_tokens=20,
    unthrottled_seconds=0.3,
    wire_streams=2,
    reconnect_streams=2,
    reconnect_concurrency=2,
    reconnect_cuts=2,
    reconnect_max_tokens=40,
    workers=1,
)
QUICK = SuiteConfig(
    name="quick",
    latency_samples=6,
    latency_max_tokens=8,
    latency_concurrency=100,
    concurrent_max_tokens=30,
    sweep=(1, 10, 100),
    sweep_max_tokens=50,
    unthrottled_seconds=1.0,
    wire_streams=3,
    reconnect_streams=10,
    reconnect_cuts=5,
    reconnect_max_tokens=80,
)
FULL = SuiteConfig(
    name="full",
    latency_samples=30,
    latency_max_tokens=20,
    latency_concurrency=500,
    concurrent_max_tokens=60,
    sweep=(1, 10, 100, 1000),
    sweep_max_tokens=200,
    unthrottled_seconds=4.0,
    wire_streams=10,
    reconnect_streams=30,
    reconnect_cuts=10,
    reconnect_max_tokens=200,
)
PRESETS = {preset.name: preset for preset in (TINY, QUICK, FULL)}
