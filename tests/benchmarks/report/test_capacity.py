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
