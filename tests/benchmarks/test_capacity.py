"""benchmarks.capacity, tiny, against real servers (every peer, the Node one included, and
twinstream with one and two processes on a real redis-server, then on a real six-node Redis
Cluster): the shape of its results, its report section, its plot and its "what to
choose" lines; never timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.capacity import contenders, run_capacity
from benchmarks.config import TINY
from benchmarks.report.capacity import (
    capacity_choice,
    capacity_section,
    capacity_table,
    knee_table,
    plot_capacity,
)


@pytest.mark.parametrize("store", ["redis", "redis-cluster"])
def test_capacity_tiny_against_real_servers(tmp_path: Path, store: str) -> None:
    data = run_capacity(TINY, store=store, progress=False)
    expected = [c.name for c in contenders(TINY.capacity_loops, store)]
    assert f"twinstream {store}×2 sse" in expected and f"twinstream {store}×2 ws" in expected
    assert list(data["contenders"]) == expected
    for name, entry in data["contenders"].items():
        # the tiny preset's levels (2, then 4) all hold on an unpaced model: the
        # search stops at its limit with two points
        assert [p["streams"] for p in entry["points"]] == [2, 4], name
        assert all(p["holds"] and p["delivered_percent"] == 100.0 for p in entry["points"]), name
        assert all(p["errors"] == 0 for p in entry["points"]), name
        assert entry["capacity"] == 4 and entry["at_limit"], name
        assert entry["streams_per_core"] == 4 / entry["processes"], name
    for transport in ("sse", "ws"):
        for processes in (1, 2):
            shared = data["contenders"][f"twinstream {store}×{processes} {transport}"]
            assert (shared["store"], shared["processes"]) == (store, processes)
    results = {"capacity": data}
    table = capacity_table(results)
    assert table is not None and len(table.splitlines()) == 2 + len(expected)
    assert "≥ 4" in table
    knee = knee_table(results)
    assert knee is not None and len(knee.splitlines()) == 2 + 2
    section = capacity_section(results)[0]
    assert section.startswith("## Capacity: streams per core")
    for transport in ("sse", "ws"):  # what a second process carried
        assert (
            f"twinstream {transport} on {store}: two processes carried 4 streams, 1.00× one "
            "process's 4, 1.00× one process in memory (4) (both at the largest level tried)."
        ) in section
    assert capacity_section({}) == ["## Capacity: streams per core\n\n_not run_"]
    assert plot_capacity(results, tmp_path) == ["capacity_knee.png"]
    assert (tmp_path / "capacity_knee.png").stat().st_size > 1000
    # every server held the tiny preset's largest level: the line says the run cannot
    # rank them rather than crown one
    line = capacity_choice(results)
    assert line is not None
    assert line.startswith("**Chats per core at 30 tokens/s: not separated by this run.**")


def test_store_option_takes_a_redis_cluster() -> None:
    from benchmarks.__main__ import build_parser
    from benchmarks.suite import configured

    args = build_parser().parse_args(["capacity", "--store", "redis-cluster"])
    assert args.store == "redis-cluster"
    assert configured("quick", store=args.store).store == "redis-cluster"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["capacity", "--store", "redis-cluster://127.0.0.1:7000"])
