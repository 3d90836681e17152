"""benchmarks.report.node: the "leaving Python for Node" line, from made-up results."""

from __future__ import annotations

from typing import Any

from benchmarks.report.node import node_choice


def level(cpu: float, kib: float) -> dict[str, Any]:
    return {"streams": 1000, "server_cpu_ms_per_1k_events": cpu, "memory_per_stream_kib": kib}


def results(mine: float, node: float) -> dict[str, Any]:
    return {
        "throughput": {
            "twinstream": {"sweep": {"sse": [level(mine, 25.0)], "ws": [level(mine, 26.0)]}},
            "node": {"sweep": {"sse": [level(node, 9.0)], "ws": [level(node, 8.0)]}},
        }
    }


def test_twinstream_behind_node_says_by_how_much() -> None:
    line = node_choice(results(30.0, 20.0))
    assert line is not None
    assert line.startswith(
        "**Leaving Python for Node buys CPU: twinstream is behind "
        "(SSE 50 % more CPU, WebSocket 50 % more CPU).**"
    )
    assert "SSE: 30.0 vs 20.0 ms of server CPU per 1,000 tokens (1.50×), 25.0 vs 9.0 KiB" in line


def test_twinstream_at_or_ahead_and_the_rounds_medians_win() -> None:
    data = results(30.0, 20.0)
    data["head_to_head"] = {
        "contenders": {
            name: {"spread": {"cpu_ms_per_1k_events": {"median": cpu}}}
            for name, cpu in (
                ("twinstream sse", 19.0),
                ("twinstream ws", 18.0),
                ("node sse", 20.0),
                ("node ws", 20.0),
            )
        }
    }
    line = node_choice(data)
    assert line is not None and line.startswith("**Leaving Python for Node buys nothing here")
    assert node_choice({}) is None
