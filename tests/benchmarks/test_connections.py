"""benchmarks.connections in a tiny configuration: shape and sanity of its output
(never timings or memory figures -- on a shared machine those are for the benchmark).

Every server is a subprocess on a free loopback port; the client connections come
from worker processes bound to 127.0.0.2 and up.
"""

from __future__ import annotations

import resource
from typing import Any

import pytest

from benchmarks.config import TINY
from benchmarks.connections import (
    ALL_SPECS,
    PLANS,
    TARGETS_KIB,
    connection_budget,
    idle_connection_memory,
    raise_fd_limit,
    report_section,
    summary_rows,
)

CONFIG = TINY.replace(workers=2)


def test_raise_fd_limit_reaches_the_hard_limit() -> None:
    limits = raise_fd_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits["soft"] == soft and limits["hard"] == hard
    assert soft >= limits["before"]
    if hard != resource.RLIM_INFINITY:
        assert soft == hard


@pytest.mark.parametrize(
    "spec,transport",
    [(spec, transport) for spec in ALL_SPECS for transport in spec.transports],
    ids=lambda value: getattr(value, "name", value),
)
def test_idle_connections_are_held_and_measured(spec: Any, transport: str) -> None:
    plan = PLANS["tiny"]
    result = idle_connection_memory(spec, transport, CONFIG)
    assert result["errors"] == 0, result["error_examples"]
    assert result["opened"] == result["attempted"] == result["connections"] == plan.connections
    # the server really holds them: one descriptor per connection
    assert result["server_fds_open"] - result["server_fds_idle"] >= plan.connections
    assert result["opened_steps"] == sorted(result["opened_steps"])
    assert result["opened_steps"][-1] == plan.connections
    assert len(result["rss_steps_mib"]) == plan.steps + 1
    assert len(result["step_kib_per_connection"]) == plan.steps
    assert result["memory_per_connection_kib"] > 0
    assert result["target_kib"] == TARGETS_KIB[transport]
    assert isinstance(result["meets_target"], bool)
    assert len(result["client_fd_limits"]) == CONFIG.workers
    results = {"connections": {spec.name: {"transports": {transport: result}}}}
    section = report_section(results)
    assert section.startswith("## Memory per idle connection") and spec.name in section
    (row,) = summary_rows(results)
    assert f"{plan.connections:,} connections" in row[0]
    assert sum(value is not None for value in row[1:]) == 1


def test_fewer_connections_than_asked_when_the_fd_limit_is_low() -> None:
    assert connection_budget(10_000, {"before": 1024, "soft": 65536, "hard": 65536}) == (
        10_000,
        None,
    )
    count, note = connection_budget(10_000, {"before": 1024, "soft": 4096, "hard": 4096})
    assert 0 < count < 4096
    assert note is not None and "file-descriptor limit (4096" in note and "10000" in note
