"""twinstream scaled out: a store and a process count on its command line, and the
worker processes that serve (the scaleout, churn and capacity parts); the Redis it
keeps streams in is :mod:`benchmarks.redis_nodes`'s."""

from __future__ import annotations

import time

import psutil

from .config import SuiteConfig
from .servers import TWINSTREAM, ServerProcess

__all__ = ["store_server_command", "worker_pids"]


def store_server_command(config: SuiteConfig, store: str, processes: int) -> list[str]:
    """The suite's twinstream command line, with a store and a process count."""
    return TWINSTREAM.command(config.tokens_per_second, config.first_token_latency) + [
        "--store",
        store,
        "--processes",
        str(processes),
    ]


def worker_pids(server: ServerProcess, processes: int) -> list[int]:
    """The processes that serve: the server itself, or its forked workers."""
    assert server.pid is not None
    if processes == 1:
        return [server.pid]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(server.pid).children()
        if len(children) >= processes:
            return [child.pid for child in children]
        time.sleep(0.05)
    raise RuntimeError("the server's worker processes did not start")
