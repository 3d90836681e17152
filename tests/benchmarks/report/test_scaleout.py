"""benchmarks.report.scaleout: the README's scale-out table from a run's rows."""

from __future__ import annotations

from typing import Any

from benchmarks.report.scaleout import budget_capacity, readme_section
from benchmarks.scaleout import ratios


def _row(
    label: str, cpu: float | None, redis_cpu: float | None = None, transport: str = "sse"
) -> dict[str, Any]:
    store, processes = ("memory", 1) if label == "memory" else ("redis", int(label[7]))
    return {
        "label": label,
        "store": store,
        "processes": processes,
        "transport": transport,
        "streams": 1000,
        "complete": 1000,
        "errors": 0,
        "server_cpu_ms_per_1k_events": cpu,
        "redis_cpu_ms_per_1k_events": redis_cpu,
        "redis_appends_per_1k_events": None if redis_cpu is None else 2.5,
        "delivery_delay_ms": {"p50": 0.8},
    }


def test_the_readme_table_puts_each_variant_beside_the_memory_store() -> None:
    results = {
        "meta": {"command": "python -m benchmarks scaleout", "started": "2026-11-22 20:00:00"},
        "scaleout": {
            "streams": 1000,
            "cpus": 2,
            "redis_server": "7.0.15",
            "by_transport": {
                transport: {"rows": rows, "ratios": ratios(rows)}
                for transport, rows in (
                    (
                        "sse",
                        [
                            _row("memory", 25.0),
                            _row("redis, 1 process", 30.0, 6.0),
                            _row("redis, 2 processes", 36.0, 7.0),
                        ],
                    ),
                    (
                        "ws",
                        [
                            # a load too short for the CPU clock: 0.0, and no ratio to it
                            _row("memory", 0.0, transport="ws"),
                            _row("redis, 1 process", 20.0, 5.0, transport="ws"),
                            _row("redis, 2 processes", None, 6.0, transport="ws"),
                        ],
                    ),
                )
            },
        },
    }
    readme = readme_section(results) or ""
    rows = readme.split("\n")
    assert (
        "| SSE: server CPU per 1k events (ms) | 25.0 | 30.0 (1.20×) | 36.0 (1.20× of 1 process) |"
    ) in rows
    assert "| WebSocket: server CPU per 1k events (ms) | 0.0 | 20.0 | — |" in rows
    assert (
        "| redis-server CPU per 1k events (ms), SSE / WebSocket | — | 6.0 / 5.0 | 7.0 / 6.0 |"
    ) in rows
    assert (
        "| delivery delay p50 (ms), SSE / WebSocket | 0.8 / 0.8 | 0.8 / 0.8 | 0.8 / 0.8 |"
    ) in rows
    assert "Every run delivered all its streams complete, without errors (1,000 streams)." in readme
    # a run from before the cluster variants: no cluster row in the judged table
    assert "| Judged | redis, 1 process | redis, 2 processes |" in rows
    assert not any("against one Redis" in row for row in rows)
    results["scaleout"]["by_transport"]["ws"]["rows"][2]["complete"] = 990  # type: ignore[index]
    assert "ws redis, 2 processes at 1,000: 990/1000 complete, 0 errors." in (
        readme_section(results) or ""
    )
    # a run whose cluster would not start says so, and judges what did run
    results["scaleout"]["cluster"] = {"skipped": "redis-cli --cluster create failed"}  # type: ignore[index]
    readme = readme_section(results) or ""
    assert "on loopback; the Redis Cluster did not run: redis-cli --cluster create failed" in readme
    assert "(each store's delivery delay above the memory store's):" in readme


def _point(streams: int, p99: float, holds: bool) -> dict[str, Any]:
    return {"streams": streams, "p99_delay_ms": p99, "delivered_percent": 100.0, "holds": holds}


def test_what_a_second_process_carries_under_a_budget_is_a_table_and_a_judged_row() -> None:
    one = {"points": [_point(500, 14.4, True), _point(1000, 292.2, False)], "capacity": 500}
    two = {
        "points": [_point(500, 5.7, True), _point(1000, 54.8, True), _point(2000, 313.7, False)],
        "capacity": 1000,
    }
    data = {
        "cpus": 2,
        "capacity": {
            "cores_per_process": 0.4,
            "p99_limit_ms": 100.0,
            "delivered_percent_limit": 99.0,
            "start": 500,
            "fine_steps": 2,
            "max_tokens": 210,
            "target": 1.6,
            "by_transport": {"sse": {"1": one, "2": two, "two_vs_one": 2.0}},
        },
    }
    text = budget_capacity(data) or ""
    assert "each process held to 0.40 of a core by a cgroup CPU quota" in text
    assert (
        "| SSE | 500 (p99 14.4 ms; 1,000 failed: p99 292.2 ms) "
        "| 1,000 (p99 54.8 ms; 2,000 failed: p99 313.7 ms) | 2.00× |"
    ) in text
    assert budget_capacity({"cpus": 2}) is None
    # nothing held: the first level tried, as a bound
    assert "| < 500 |" in (
        budget_capacity(
            {
                **data,
                "capacity": {
                    **data["capacity"],
                    "by_transport": {"sse": {"1": {"points": [_point(500, 300, False)]}, "2": two}},
                },
            }
        )
        or ""
    )
