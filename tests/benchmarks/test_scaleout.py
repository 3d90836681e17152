"""The scale-out benchmark part in its tiny configuration, against real redis-server
nodes (one, and a six-node Redis Cluster): shape and sanity, never timings."""

from __future__ import annotations

from typing import Any

from benchmarks.capacity import run_store_scaling
from benchmarks.config import FULL, QUICK, TINY
from benchmarks.report.scaleout import (
    budget_capacity,
    judged_table,
    readme_section,
    scaleout_details,
)
from benchmarks.scaleout import levels, median_row, ratios, run_scaleout

LABELS = [
    "memory",
    "redis, 1 process",
    "redis, 2 processes",
    "redis cluster, 1 process",
    "redis cluster, 2 processes",
]


def test_levels_are_500_and_the_sweeps_top_in_the_full_preset_only() -> None:
    assert levels(FULL) == [500, 1000]
    assert levels(QUICK) == [max(QUICK.sweep)]
    assert levels(TINY) == [max(TINY.sweep)]
    assert levels(TINY.replace(scaleout_extra_levels=(2,))) == [2, 3]


def _row(streams: int, store: str, processes: int, label: str, p50: float, cpu: float) -> dict:
    return {
        "streams": streams,
        "store": store,
        "processes": processes,
        "label": label,
        "server_cpu_ms_per_1k_events": cpu,
        "redis_cpu_ms_per_1k_events": None if store == "memory" else cpu / 4,
        "redis_masters_cpu_ms_per_1k_events": None if store == "memory" else cpu / 8,
        "delivery_delay_ms": {"p50": p50, "p99": 2 * p50},
    }


def test_ratios_judge_each_level_against_memory_and_the_cluster_against_one_redis() -> None:
    rows = [
        _row(500, "memory", 1, "memory", 10.0, 20.0),
        _row(500, "redis", 1, "redis, 1 process", 14.0, 30.0),
        _row(500, "redis-cluster", 1, "redis cluster, 1 process", 15.0, 33.0),
        _row(1000, "memory", 1, "memory", 20.0, 25.0),
        _row(1000, "redis", 1, "redis, 1 process", 35.0, 40.0),
        _row(1000, "redis", 2, "redis, 2 processes", 26.0, 44.0),
        _row(1000, "redis-cluster", 2, "redis cluster, 2 processes", 27.0, 55.0),
    ]
    got = ratios(rows)
    # the CPU ratios at the top level, as before
    assert (got["redis_vs_memory"], got["two_vs_one_process"]) == (1.6, 1.1)
    low, top = got["by_level"]["500"], got["by_level"]["1000"]
    assert low["redis, 1 process"]["p99_over_memory_ms"] == 8.0
    assert low["redis cluster, 1 process"]["server_cpu_vs_redis"] == 1.1
    assert top["redis, 1 process"]["p50_over_memory_ms"] == 15.0
    assert top["redis cluster, 2 processes"]["server_cpu_vs_redis"] == 1.25
    assert top["redis cluster, 2 processes"]["redis_cpu_vs_redis"] == 1.25
    assert top["redis cluster, 2 processes"]["redis_masters_cpu_vs_redis"] == 0.62
    assert "server_cpu_vs_redis" not in top["redis, 2 processes"]
    assert "memory" not in top
    results = {"levels": [500, 1000], "streams": 1000, "by_transport": {"sse": {"rows": rows}}}
    judged = (judged_table(results) or "").splitlines()
    assert judged[0] == "| Judged | " + " | ".join(LABELS[1:]) + " |"
    assert judged[2:] == [
        "| p99 delay above memory at 500 streams (ms), SSE; target ≤ 10 | +8.0 | — | +10.0 | — |",
        "| p50 delay above memory at 1,000 streams (ms), SSE; target ≤ 10 | +15.0 | +6.0 | — "
        "| +7.0 |",
        "| server CPU per 1k events against one Redis at 500 streams, SSE; target ≤ 1.2× "
        "| — | — | 1.10× | — |",
        "| server CPU per 1k events against one Redis at 1,000 streams, SSE; target ≤ 1.2× "
        "| — | — | — | 1.25× |",
        "| redis-server CPU per 1k events against one Redis at 1,000 streams, SSE: every node "
        "(replicas too) | — | — | — | 1.25× |",
        "| ... the masters alone, SSE | — | — | — | 0.62× |",
    ]


def test_scaleout_part_measures_every_variant() -> None:
    results = run_scaleout(TINY, transports=("sse",), progress=False)
    assert results["cpus"] >= 1 and results["streams"] == max(TINY.sweep)
    assert results["levels"] == [max(TINY.sweep)]
    assert results["cluster"] == {"masters": 3, "nodes": 6}
    data = results["by_transport"]["sse"]
    assert [r["label"] for r in data["rows"]] == LABELS
    assert [(r["store"], r["processes"]) for r in data["rows"]] == [
        ("memory", 1),
        ("redis", 1),
        ("redis", 2),
        ("redis-cluster", 1),
        ("redis-cluster", 2),
    ]
    for row in data["rows"]:
        assert row["complete"] == row["streams"] and row["errors"] == 0, row["error_examples"]
        assert row["delta_events"] > 0
    memory, one, two, cluster_one, cluster_two = data["rows"]
    assert memory["redis_appends_per_1k_events"] is None and memory["redis_nodes"] == 0
    assert (one["redis_nodes"], cluster_one["redis_nodes"]) == (1, 6)
    for row in (one, two, cluster_one, cluster_two):
        assert row["redis_appends_per_1k_events"] > 0
        assert row["redis_cpu_ms_per_1k_events"] is not None
        # the masters are some of the nodes (all of one redis-server)
        assert row["redis_masters_cpu_ms_per_1k_events"] <= row["redis_cpu_ms_per_1k_events"]
    assert one["redis_masters_cpu_ms_per_1k_events"] == one["redis_cpu_ms_per_1k_events"]
    judged = data["ratios"]["by_level"][str(results["streams"])]
    assert set(judged) == set(LABELS[1:])
    for label in LABELS[1:]:
        assert judged[label]["p99_over_memory_ms"] is not None
    # (a tiny load may be too short for the CPU clock: the ratio is there, maybe None)
    assert "server_cpu_vs_redis" in judged["redis cluster, 2 processes"]
    assert "server_cpu_vs_redis" not in judged["redis, 2 processes"]
    text = scaleout_details(results)
    assert "| 3 | redis-cluster | 2 |" in text and "2 processes / 1" in text
    assert "| Judged | redis, 1 process | redis, 2 processes | redis cluster, 1 process |" in text
    # the README's tables from the same run: a row per measure, a column per variant
    meta = {"command": "python -m benchmarks scaleout", "started": "2026-11-22 20:00:00"}
    readme = readme_section({"meta": meta, "scaleout": results}) or ""
    assert "| 3 streams | " + " | ".join(LABELS) + " |" in readme
    assert "| SSE: server CPU per 1k events (ms) | " in readme
    assert "| delivery delay p99 (ms), SSE | " in readme
    assert "server CPU per 1k events against one Redis at 3 streams, SSE" in readme
    assert "Every run delivered all its streams complete, without errors (3 streams)" in readme
    assert readme_section({"meta": meta, "scaleout": {"skipped": "no redis-server"}}) is None


def test_what_a_second_process_carries_is_searched_with_each_process_held_to_a_budget() -> None:
    config = TINY.replace(capacity_transports=("sse",))
    results = run_store_scaling(config, progress=False)
    assert results["cores_per_process"] == TINY.scaleout_capacity_cores == 0.5
    assert results["target"] == 1.6 and results["max_tokens"] == TINY.capacity_max_tokens
    found = results["by_transport"]["sse"]
    for processes in ("1", "2"):
        points = found[processes]["points"]
        assert [p["streams"] for p in points][0] == TINY.capacity_start
        for point in points:
            assert point["server_cores"] == 0.5  # every level's processes were held to it
            assert point["errors"] == 0 and point["delivered_percent"] == 100.0
    one, two = found["1"]["capacity"], found["2"]["capacity"]
    assert one > 0 and found["two_vs_one"] == round(two / one, 2)
    text = budget_capacity({"cpus": 2, "capacity": results}) or ""
    assert "each process held to 0.50 of a core" in text and "| SSE | " in text


def test_rounds_of_a_variant_are_one_row_of_medians_with_each_round_kept() -> None:
    def run(cpu: float, p50: float, p99: float, complete: int, errors: int) -> dict[str, Any]:
        return {
            "label": "redis, 1 process",
            "store": "redis",
            "processes": 1,
            "streams": 500,
            "server_cpu_ms_per_1k_events": cpu,
            "redis_appends_per_1k_events": None,
            "redis_cpu_ms_per_1k_events": 8.0,
            "delivered_events_per_s": 15000.0,
            "window_all_streams_live": True,
            "delivery_delay_ms": {"p50": p50, "p99": p99},
            "complete": complete,
            "errors": errors,
            "error_examples": ["late"] * errors,
            "server_log": [],
        }

    runs = [run(30.0, 3.0, 9.0, 500, 0), run(26.0, 5.0, 6.0, 499, 1), run(28.0, 4.0, 7.0, 500, 0)]
    row = median_row(runs)
    assert row["server_cpu_ms_per_1k_events"] == 28.0
    assert row["delivery_delay_ms"] == {"p50": 4.0, "p99": 7.0}  # each percentile's median
    assert (row["streams"], row["processes"]) == (500, 1)  # not "medians"
    assert row["redis_appends_per_1k_events"] is None
    assert row["window_all_streams_live"] is True
    assert (row["complete"], row["errors"], row["error_examples"]) == (499, 1, ["late"])
    assert [r["server_cpu_ms_per_1k_events"] for r in row["each_round"]] == [30.0, 26.0, 28.0]
    assert [r["p99_delay_ms"] for r in row["each_round"]] == [9.0, 6.0, 7.0]
    assert median_row(runs[:1]) is runs[0]
    text = scaleout_details(
        {
            "streams": 500,
            "levels": [500],
            "cpus": 2,
            "redis_server": "7.0.15",
            "by_transport": {"sse": {"rows": [row], "ratios": ratios([row])}},
        }
    )
    assert "redis, 1 process at 500: 30.0 (3.0 / 9.0), 26.0 (5.0 / 6.0), 28.0 (4.0 / 7.0)" in text
