"""How big a run is: one :class:`SuiteConfig` per preset (tiny for tests, quick, full)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from server.config import Settings

__all__ = ["SuiteConfig", "SERVER_DEFAULTS", "TINY", "QUICK", "FULL", "PRESETS"]

#: the server's own defaults (pace, first-token wait, write bounds), never restated here
SERVER_DEFAULTS = Settings()


@dataclass(frozen=True)
class SuiteConfig:
    """Every knob of a run. Token rates apply to the synthetic model of every
    server the suite starts (twinstream and the peers alike)."""

    name: str
    #: pacing of the synthetic model, tokens/s per stream (0 = unthrottled)
    tokens_per_second: float = SERVER_DEFAULTS.tokens_per_second
    #: the synthetic model's wait before the first token, seconds
    first_token_latency: float = SERVER_DEFAULTS.first_token_latency
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
    # -- network profiles (benchmarks.network)
    network_profiles: tuple[str, ...] = ("3g",)
    network_samples: int = 3  # cold completions per variant and profile
    network_max_tokens: int = 15
    network_keepup_tokens: int = 60  # per stream in the keep-up run (2 s at 30 tokens/s)
    # -- real browsers (benchmarks.browser)
    browser_cuts: int = 3  # server-side cuts per transport
    browser_cpu_events: int = 1000  # events per transport for the CPU measure
    browser_limit_tokens: int = 30  # length of each of the 7 concurrent streams
    browser_parts: tuple[str, ...] = ("reconnect",)
    #: HTTP/2 in front (benchmarks.http2): streams one page opens at once, per measure
    http2_counts: tuple[int, ...] = (7, 20, 50)
    # -- churn (benchmarks.churn)
    churn_clients: int = 20  # per transport
    churn_seconds: float = 20.0
    churn_interval: float = 2.0  # seconds between cut rounds
    churn_fraction: float = 0.2  # share of the clients cut each round
    churn_offline: float = 1.0  # seconds a cut client stays offline (mean)
    # -- head to head (benchmarks.headtohead): rounds of every contender in turn
    head_to_head_rounds: int = 0
    #: the loads each round runs (benchmarks.headtohead.LOADS); fewer loads measure
    #: fewer targets, with only the contenders those targets compare
    head_to_head_loads: tuple[str, ...] = ("throughput", "latency", "unthrottled")
    #: each Python contender runs on each of these event loops (benchmarks.servers.LOOPS)
    head_to_head_loops: tuple[str, ...] = ("asyncio",)
    # -- the protocol table (benchmarks.protocols): every view of benchmarks.views
    protocol_streams: int = 1000  # concurrent streams for server CPU per token
    protocol_max_tokens: int = 60  # tokens per stream in that load
    protocol_completions: int = 5  # completions per variant for bytes per token
    protocol_samples: int = 10  # time to first token, cold and warm each
    # -- a conversation (benchmarks.conversation): turns that each wait for the answer
    conversation_turns: int = 20
    conversation_tokens: int = 20  # per answer
    conversation_profiles: tuple[str, ...] = ("loopback", "broadband", "4g", "3g", "poor")
    # -- capacity (benchmarks.capacity): streams at the model's pace until delivery slows
    capacity_start: int = 500  # the coarse search's first level
    capacity_limit: int = 16000  # it stops here if every level held
    capacity_fine_steps: int = 2  # bisections between the last level held and the first failed
    capacity_max_tokens: int = 210  # per stream: 7 s at 30 tokens/s (the model's most: 220)
    capacity_loops: tuple[str, ...] = ("asyncio", "uvloop")  # each Python server on each
    #: the transports searched per server (a server speaking none of them: its own)
    capacity_transports: tuple[str, ...] = ("sse", "ws")
    #: ``redis`` or ``redis-cluster``: capacity also runs twinstream on that store with
    #: two processes
    store: str | None = None
    # -- scale-out (benchmarks.scaleout): levels measured besides the sweep's largest
    scaleout_extra_levels: tuple[int, ...] = ()
    scaleout_rounds: int = 1  # runs of every variant, in turn; the report gives medians
    #: cores each twinstream process is held to while the capacity search runs on one
    #: Redis with one process and two (benchmarks.capacity.run_store_scaling); 0: not run
    scaleout_capacity_cores: float = 0.0
    # -- load generation
    workers: int = 2  # client processes
    ramp_per_stream: float = 0.002  # seconds between stream starts under load
    seed: int = 5

    def replace(self, **changes: Any) -> SuiteConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteConfig:
        """The inverse of :meth:`as_dict` (JSON turned the tuples into lists)."""
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**fields)


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
    network_profiles=("loopback",),
    network_samples=2,
    network_max_tokens=6,
    network_keepup_tokens=12,
    browser_cuts=1,
    browser_cpu_events=60,
    browser_limit_tokens=10,
    browser_parts=("reconnect", "limit", "cpu"),
    http2_counts=(7,),
    head_to_head_rounds=2,
    protocol_streams=3,
    protocol_max_tokens=8,
    conversation_turns=3,
    conversation_tokens=5,
    conversation_profiles=("loopback", "broadband"),
    capacity_start=2,
    capacity_limit=4,
    capacity_fine_steps=1,
    capacity_max_tokens=10,
    capacity_loops=("asyncio",),
    scaleout_capacity_cores=0.5,
    protocol_completions=2,
    protocol_samples=2,
    churn_clients=3,
    churn_seconds=3.0,
    churn_interval=0.5,
    churn_fraction=0.5,
    churn_offline=0.2,
    workers=1,
)
QUICK = SuiteConfig(
    name="quick",
    # trimmed for issue 25 (the Node peer's two transports, four new parts): still
    # under three minutes on two shared cores
    latency_samples=3,
    latency_max_tokens=6,
    latency_concurrency=100,
    concurrent_max_tokens=20,
    sweep=(100,),
    sweep_max_tokens=30,
    unthrottled_seconds=0.5,
    wire_streams=2,
    reconnect_streams=10,
    reconnect_cuts=5,
    reconnect_max_tokens=80,
    network_profiles=("3g",),
    network_samples=2,
    network_keepup_tokens=30,
    browser_cuts=2,
    browser_parts=("reconnect",),
    http2_counts=(7,),
    churn_clients=6,
    churn_seconds=3.0,
    protocol_streams=100,
    protocol_max_tokens=20,
    protocol_completions=3,
    protocol_samples=2,
    conversation_profiles=("loopback",),
    # one capacity point per server (one transport each): a level that holds ends the
    # search at its limit
    capacity_start=200,
    capacity_limit=200,
    capacity_fine_steps=0,
    capacity_max_tokens=30,
    capacity_loops=("asyncio",),
    capacity_transports=("ws",),
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
    network_profiles=("loopback", "broadband", "4g", "3g", "poor"),
    network_samples=6,
    network_max_tokens=20,
    network_keepup_tokens=120,
    browser_cuts=8,
    browser_cpu_events=2000,
    browser_limit_tokens=45,
    browser_parts=("reconnect", "limit", "cpu"),
    head_to_head_rounds=8,
    head_to_head_loops=("asyncio", "uvloop"),
    churn_clients=50,
    churn_seconds=120.0,
    churn_interval=3.0,
    churn_fraction=0.2,
    churn_offline=2.0,
    scaleout_extra_levels=(500,),  # the latency part's level: where the machine has room
    # two processes, redis-server and the load generator within two cores
    scaleout_capacity_cores=0.4,
    scaleout_rounds=3,  # one run of each cannot tell a shared machine's noise from a change
)
PRESETS = {preset.name: preset for preset in (TINY, QUICK, FULL)}
