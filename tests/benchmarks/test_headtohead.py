"""benchmarks.headtohead: one real round in a tiny configuration (shape and sanity only,
never timings), and loads it refuses."""

from __future__ import annotations

import pytest

from benchmarks.config import TINY
from benchmarks.headtohead import run_head_to_head
from benchmarks.report.headtohead import readme_table, report_section
from benchmarks.targets import (
    CONTENDERS,
    LOADS,
    MEASURES,
    TARGETS,
    label,
    round_order,
    targets_for,
)


def test_one_round_against_real_servers() -> None:
    data = run_head_to_head(TINY.replace(head_to_head_rounds=1, workers=1), progress=False)
    assert data["rounds"] == 1 and data["streams"] == max(TINY.sweep)
    assert data["orders"] == [
        [label(spec, transport) for spec, transport in round_order(CONTENDERS, 0)]
    ]
    for name, contender in data["contenders"].items():
        assert contender["error_examples"] == [], name
        samples = contender["samples"]
        assert set(samples) == set(MEASURES)
        assert all(len(values) == 1 for values in samples.values()), name
        # every stream delivered every token; the latency load and the unthrottled
        # stream really ran
        assert samples["delivered_percent"] == [100.0], name
        assert samples["p99_delay_ms"][0] is not None and samples["p99_delay_ms"][0] >= 0
        assert samples["unthrottled_events_per_s"][0] > 0
    assert len(data["targets"]) == len(TARGETS)
    assert all(v["rounds"] <= 1 for v in data["targets"])
    results = {"head_to_head": data}
    section = report_section(results)
    assert section.startswith("## Head to head")
    assert all(name in section for name in data["contenders"])
    table = readme_table(results)
    assert table is not None
    # a row per measure, and one more per measure compared with the Node peer too
    rows = {(t.measure, t.reference.startswith("node")) for t in TARGETS}
    assert len(table.splitlines()) == 2 + len(rows)
    assert readme_table({"head_to_head": {**data, "rounds": 0}}) is None
    assert report_section({}) == ""


def test_throughput_rounds_alone_against_real_servers() -> None:
    loads = ("throughput", "throughput")  # named twice, run once: rounds stay paired
    config = TINY.replace(head_to_head_rounds=1, head_to_head_loads=loads, workers=1)
    data = run_head_to_head(config, progress=False)
    assert data["loads"] == ["throughput"]
    assert list(data["contenders"]) == [
        "twinstream sse",
        "twinstream ws",
        "websockets",
        "node sse",
        "node ws",
    ]
    for name, contender in data["contenders"].items():
        assert contender["error_examples"] == [], name
        assert set(contender["samples"]) == set(LOADS["throughput"]), name
        assert contender["samples"]["delivered_percent"] == [100.0], name
    assert {(v["measure"], v["contender"]) for v in data["targets"]} == {
        (t.measure, t.contender) for t in targets_for(["throughput"])
    }
    results = {"head_to_head": data}
    section = report_section(results)
    assert "the throughput load, in an order" in section
    assert "over every 10 rounds" in section  # five contenders: two squares
    assert "Delivery delay" not in section and "unthrottled" not in section
    assert "sse-starlette" not in section
    table = readme_table(results)
    assert table is not None and len(table.splitlines()) == 2 + 3 + 1  # CPU against node too


def test_an_unknown_load_is_refused_before_any_server_starts() -> None:
    with pytest.raises(ValueError, match="unknown head-to-head load.*bogus.*throughput"):
        run_head_to_head(TINY.replace(head_to_head_loads=("bogus",)), progress=False)


def test_rounds_run_the_python_contenders_on_uvloop_too() -> None:
    config = TINY.replace(
        head_to_head_rounds=1,
        head_to_head_loads=("unthrottled",),
        head_to_head_loops=("asyncio", "uvloop"),
        workers=1,
    )
    data = run_head_to_head(config, progress=False)
    assert list(data["contenders"]) == [
        "twinstream sse",
        "twinstream ws",
        "websockets",
        "twinstream+uvloop sse",
        "twinstream+uvloop ws",
        "websockets+uvloop",
    ]
    for name, contender in data["contenders"].items():
        assert contender["error_examples"] == [], name
        assert contender["samples"]["unthrottled_events_per_s"][0] > 0, name
    # the targets compare the default loop's contenders; the uvloop ones sit beside them
    assert {v["contender"] for v in data["targets"]} == {"twinstream sse", "twinstream ws"}
    assert "twinstream+uvloop sse" in report_section({"head_to_head": data})
