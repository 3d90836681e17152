"""Peers: the latency and throughput workloads against two reference servers.

The reference servers (:mod:`benchmarks.peers`) are what a Python user would
otherwise pick: ``sse-starlette`` on ``uvicorn`` for SSE and the ``websockets``
library for WebSocket. They speak twinstream's wire contract for new streams
and serve the same deterministic synthetic model at the same pace, so the
report can show, from the same run, where twinstream stands. They cannot resume
streams, so the reconnection part does not apply to them.

Run alone: ``python -m benchmarks peers [--quick]``.
"""

from __future__ import annotations

from typing import Any

from .config import SuiteConfig
from .latency import run_latency
from .servers import PEER_SPECS
from .throughput import run_throughput

__all__ = ["run_peers"]


def run_peers(config: SuiteConfig, progress: bool = True) -> dict[str, Any]:
    """``{"latency": {...}, "throughput": {...}}`` keyed by peer server name."""
    return {
        "latency": run_latency(config, PEER_SPECS, progress=progress),
        "throughput": run_throughput(config, PEER_SPECS, progress=progress),
    }
