"""benchmarks.capacity's search, as pure code: a made-up delivery curve, levels counted."""

from __future__ import annotations

from typing import Any

from benchmarks.capacity import DELIVERED_PERCENT, P99_LIMIT_MS, contenders, holds, search


def knee_at(capacity: int) -> Any:
    """A server whose p99 delay jumps past the limit above ``capacity`` streams."""
    measured: list[int] = []

    def measure(streams: int) -> dict[str, Any]:
        measured.append(streams)
        late = streams > capacity
        return {"p99_delay_ms": 500.0 if late else 5.0, "delivered_percent": 100.0}

    return measure, measured


def test_coarse_doubles_then_fine_bisects() -> None:
    measure, measured = knee_at(1300)
    found = search(measure, 250, 16000, 3)
    assert measured == [250, 500, 1000, 2000, 1500, 1250, 1375]
    assert found["capacity"] == 1250 and not found["at_limit"]
    assert [p["holds"] for p in found["points"]] == [True, True, True, False, False, True, False]


def test_every_level_holding_stops_at_the_limit() -> None:
    measure, measured = knee_at(10**6)
    found = search(measure, 500, 3000, 3)
    assert measured == [500, 1000, 2000, 3000]
    assert found["capacity"] == 3000 and found["at_limit"]


def test_a_failing_start_halves_down_then_bisects() -> None:
    measure, measured = knee_at(90)
    found = search(measure, 400, 16000, 2)
    assert measured == [400, 200, 100, 50, 75, 87]
    assert found["capacity"] == 87


def test_one_point_when_start_is_the_limit() -> None:
    measure, measured = knee_at(10)
    found = search(measure, 200, 200, 0)
    assert measured == [200] and found["capacity"] == 0
    measure, measured = knee_at(1000)
    assert search(measure, 200, 200, 0)["capacity"] == 200 and measured == [200]


def test_a_level_holds_on_both_delay_and_delivery() -> None:
    assert holds({"p99_delay_ms": P99_LIMIT_MS, "delivered_percent": DELIVERED_PERCENT})
    assert not holds({"p99_delay_ms": P99_LIMIT_MS + 0.1, "delivered_percent": 100.0})
    assert not holds({"p99_delay_ms": 1.0, "delivered_percent": DELIVERED_PERCENT - 0.01})
    assert not holds({"p99_delay_ms": None, "delivered_percent": 100.0})


def test_contenders_cover_every_server_loop_and_the_store() -> None:
    names = [c.name for c in contenders(("asyncio", "uvloop"), "redis")]
    assert names == [
        "twinstream sse",
        "twinstream ws",
        "sse-starlette",
        "websockets",
        "node sse",
        "node ws",
        "twinstream+uvloop sse",
        "twinstream+uvloop ws",
        "sse-starlette+uvloop",
        "websockets+uvloop",
        "twinstream redis×1 sse",
        "twinstream redis×2 sse",
        "twinstream redis×1 ws",
        "twinstream redis×2 ws",
    ]


def test_a_levels_starts_spread_over_a_share_of_a_stream_only() -> None:
    from benchmarks.capacity import RAMP_SHARE, level_config
    from benchmarks.config import FULL

    seconds = FULL.capacity_max_tokens / FULL.tokens_per_second
    for streams in (10, 500, 8000):
        config = level_config(FULL, streams)
        assert config.sweep_max_tokens == FULL.capacity_max_tokens
        assert config.ramp_per_stream <= FULL.ramp_per_stream
        assert config.ramp_per_stream * streams <= RAMP_SHARE * seconds + 1e-9
    assert level_config(FULL, 10).ramp_per_stream == FULL.ramp_per_stream  # few: unchanged


def test_one_transport_per_server_for_the_quick_preset() -> None:
    from benchmarks.config import QUICK

    names = [c.name for c in contenders(QUICK.capacity_loops, None, QUICK.capacity_transports)]
    # sse-starlette speaks no WebSocket: it is searched over its own SSE
    assert names == ["twinstream ws", "sse-starlette", "websockets", "node ws"]
