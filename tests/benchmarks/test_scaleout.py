"""The scale-out benchmark part in its tiny configuration: shape and sanity."""

from __future__ import annotations

from benchmarks.config import TINY
from benchmarks.report.scaleout import readme_section, scaleout_details
from benchmarks.scaleout import run_scaleout


def test_scaleout_part_measures_every_variant() -> None:
    results = run_scaleout(TINY, transports=("sse",), progress=False)
    assert results["cpus"] >= 1 and results["streams"] == max(TINY.sweep)
    data = results["by_transport"]["sse"]
    assert [(r["store"], r["processes"]) for r in data["rows"]] == [
        ("memory", 1),
        ("redis", 1),
        ("redis", 2),
    ]
    for row in data["rows"]:
        assert row["complete"] == row["streams"] and row["errors"] == 0
        assert row["delta_events"] > 0
    memory, one, two = data["rows"]
    assert memory["redis_appends_per_1k_events"] is None
    assert one["redis_appends_per_1k_events"] > 0 and two["redis_appends_per_1k_events"] > 0
    assert set(data["ratios"]) == {"redis_vs_memory", "two_vs_one_process", "targets"}
    text = scaleout_details(results)
    assert "| redis | 2 |" in text and "2 processes / 1" in text
    # the README's table from the same run: a row per measure, a column per variant
    meta = {"command": "python -m benchmarks scaleout", "started": "2026-11-22 20:00:00"}
    readme = readme_section({"meta": meta, "scaleout": results}) or ""
    assert "| 3 streams | memory | redis, 1 process | redis, 2 processes |" in readme
    assert "| SSE: server CPU per 1k events (ms) | " in readme
    assert "| delivery delay p50 (ms), SSE | " in readme
    assert f"Every run delivered all {results['streams']:,} streams complete" in readme
    assert readme_section({"meta": meta, "scaleout": {"skipped": "no redis-server"}}) is None
