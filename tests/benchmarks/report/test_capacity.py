"""benchmarks.report.capacity's "what to choose" lines, from made-up capacity results."""

from __future__ import annotations

from typing import Any

from benchmarks.report.capacity import capacity_choice, loop_choice


def entry(per_core: float, loop: str = "asyncio", store: str = "memory") -> dict[str, Any]:
    point = {"streams": int(per_core), "p99_delay_ms": 50.0, "holds": True}
    return {
        "capacity": int(per_core),
        "streams_per_core": per_core,
        "loop": loop,
        "store": store,
        "processes": 1,
        "points": [point],
        "at_limit": False,
    }


RESULTS = {
    "capacity": {
        "contenders": {
            "twinstream sse": entry(3000),
            "twinstream ws": entry(2800),
            "websockets": entry(2000),
            "node ws": entry(4000),
            "twinstream+uvloop sse": entry(3900, "uvloop"),
            "websockets+uvloop": entry(2050, "uvloop"),
        }
    }
}


def test_capacity_line_names_the_leader_and_how_far_twinstream_is_behind() -> None:
    line = capacity_choice(RESULTS)
    assert line is not None
    assert line.startswith("**Most chats per core at 30 tokens/s: node ws** (4,000 streams")
    assert (
        "twinstream is behind: 3,000 (twinstream sse) against 4,000 (node ws), 25 % fewer" in line
    )


def test_loop_line_says_what_uvloop_bought_each_server() -> None:
    line = loop_choice(RESULTS)
    assert line is not None
    assert line.startswith("**Event loop: uvloop for twinstream sse.**")
    assert "twinstream sse 3,000 → 3,900, websockets 2,000 → 2,050" in line
    assert loop_choice({"capacity": {"contenders": {"x": entry(1)}}}) is None


def test_a_level_failed_on_a_busy_machine_ranks_nothing_and_taints_the_run() -> None:
    from benchmarks.report.capacity import busy_capacity_levels, capacity_table
    from benchmarks.report.verdict import tainted_figures

    data: dict[str, Any] = {
        "capacity": {"contenders": {"twinstream ws": entry(0), "node ws": entry(200)}}
    }
    failed = {
        "streams": 200,
        "p99_delay_ms": 118.0,
        "delivered_percent": 100.0,
        "holds": False,
        "machine_busy_percent": 99.3,
    }
    data["capacity"]["contenders"]["twinstream ws"]["points"] = [failed]
    line = capacity_choice(data)
    assert line is not None
    assert line.startswith("**Chats per core at 30 tokens/s: the machine was too busy to tell.**")
    assert busy_capacity_levels(data) == [("capacity at 200 streams — twinstream ws", 99.3)]
    assert ("capacity at 200 streams — twinstream ws", 99.3) in tainted_figures(data)
    table = capacity_table(data)
    assert table is not None and "(machine 99 % busy)" in table
