"""The connections part's sizes per preset, issue 8's targets and the fd limits."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from ..config import SuiteConfig

__all__ = [
    "TARGETS_KIB",
    "FD_MARGIN",
    "ConnectionsPlan",
    "PLANS",
    "plan_for",
    "raise_fd_limit",
    "connection_budget",
]

#: issue 8's targets, KiB of server memory per idle open connection
TARGETS_KIB = {"ws": 16.0, "sse": 20.0}
#: file descriptors the server and each client process need beyond the connections
FD_MARGIN = 200


@dataclass(frozen=True)
class ConnectionsPlan:
    """How many connections, opened in how many steps, RSS read how often per step."""

    connections: int
    steps: int
    samples: int


PLANS = {
    "tiny": ConnectionsPlan(connections=40, steps=2, samples=3),
    "quick": ConnectionsPlan(connections=500, steps=2, samples=3),
    "full": ConnectionsPlan(connections=10000, steps=4, samples=5),
}


def plan_for(config: SuiteConfig) -> ConnectionsPlan:
    """The plan of ``config``'s preset (the full one for an unknown preset)."""
    return PLANS.get(config.name, PLANS["full"])


def raise_fd_limit() -> dict[str, int]:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit (children inherit
    it); returns ``{"before": soft, "soft": new soft, "hard": hard}``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return {"before": before, "soft": soft, "hard": hard}
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        # 1 << 20 can exceed fs.nr_open when the hard limit is unlimited
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, 1 << 16), hard))
        except (ValueError, OSError):
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {"before": before, "soft": soft, "hard": hard}


def connection_budget(wanted: int, limits: dict[str, int]) -> tuple[int, str | None]:
    """How many of ``wanted`` connections the file-descriptor limit allows (the server
    holds one descriptor per connection, each client worker its share), and a note
    saying so when that is fewer."""
    count = min(wanted, max(0, limits["soft"] - FD_MARGIN))
    if count == wanted:
        return count, None
    return count, (
        f"the file-descriptor limit ({limits['soft']}, hard {limits['hard']}) allows "
        f"{count} of the {wanted} connections asked for"
    )
