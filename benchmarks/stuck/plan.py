"""The stuck-readers part's knobs per preset, and issue 8's targets."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import SERVER_DEFAULTS, SuiteConfig

__all__ = [
    "MIB",
    "TARGET_EXTRA_MIB",
    "TARGET_DELAY_RATIO",
    "STUCK_MAX_TOKENS",
    "StuckPlan",
    "PLANS",
    "plan_for",
    "bounds_flags",
]

#: bytes in a MiB: a unit (memory figures), not a bound
MIB = 1 << 20
#: issue 8's targets
TARGET_EXTRA_MIB = 2.0
TARGET_DELAY_RATIO = 2.0
#: every stream's length, the stuck reader's and the normal clients' alike, so the
#: baseline's memory per stream is the cost of the stuck reader's streams too
STUCK_MAX_TOKENS = 200


@dataclass(frozen=True)
class StuckPlan:
    """Knobs of this part, per preset."""

    normal_clients: int
    window: float  # seconds each run lasts; the stuck reader must be dropped within it
    write_timeout: float  # passed as --write-timeout
    #: passed as --max-pending-bytes: the server's default (1 MiB, issue 8's figure)
    max_pending_bytes: int = SERVER_DEFAULTS.max_pending_bytes
    flood_per_second: float = 50.0
    pipelined: int = 400  # SSE: requests pipelined on the stuck connection
    tokens_per_second: float | None = None  # None: the suite's pace
    ws_ping_interval: float = 2.0  # so the server pings within the window


PLANS = {
    "tiny": StuckPlan(normal_clients=4, window=5.0, write_timeout=1.0, tokens_per_second=200.0),
    "quick": StuckPlan(normal_clients=20, window=18.0, write_timeout=2.0),
    "full": StuckPlan(normal_clients=50, window=30.0, write_timeout=5.0),
}


def plan_for(config: SuiteConfig) -> StuckPlan:
    """The plan of ``config``'s preset (the full one for an unknown preset)."""
    return PLANS.get(config.name, PLANS["full"])


def bounds_flags(plan: StuckPlan) -> list[str]:
    """The server flags that bound what it holds for a reader."""
    return [
        "--max-pending-bytes",
        str(plan.max_pending_bytes),
        "--write-timeout",
        str(plan.write_timeout),
    ]
