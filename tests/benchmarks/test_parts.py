"""benchmarks.parts: the registry's names, what each preset runs inside which part, and
how a part's data lands in the results."""

from __future__ import annotations

from typing import Any

from benchmarks.config import TINY
from benchmarks.parts import (
    PARTS,
    Part,
    RunContext,
    included_context,
    inclusions,
    part_named,
    part_names,
    run_part,
)
from benchmarks.servers import PEER_SPECS, TWINSTREAM


def test_parts_by_kind_keep_the_command_lines_order() -> None:
    assert part_names("default") == (
        "latency",
        "throughput",
        "reconnect",
        "peers",
        "network",
        "browser",
        "churn",
        "protocols",
        "capacity",
        "http2",
        "conversation",
    )
    assert part_names("extra") == ("connections", "stuck", "headtohead")
    assert part_names("optional") == ("scaleout",)
    assert len({part.name for part in PARTS}) == len(PARTS)


def test_the_full_preset_runs_the_bounds_and_the_rounds_inside_other_parts() -> None:
    named = ["throughput", "peers"]
    inside_throughput = inclusions("full", "throughput", named, None)
    assert [(i.part, i.servers) for i in inside_throughput] == [
        ("connections", (TWINSTREAM,)),
        ("stuck", None),
    ]
    inside_peers = inclusions("full", "peers", named, None)
    assert [(i.part, i.servers) for i in inside_peers] == [
        ("connections", PEER_SPECS),
        ("headtohead", None),
    ]
    # a part named on its own runs once, alone; --url keeps throughput's bounds out
    assert [i.part for i in inclusions("full", "throughput", [*named, "stuck"], None)] == [
        "connections"
    ]
    assert inclusions("full", "throughput", named, "http://127.0.0.1:9/") == []
    assert [i.part for i in inclusions("full", "peers", named, "http://127.0.0.1:9/")] == [
        "connections",
        "headtohead",
    ]
    for preset in ("quick", "tiny"):
        assert inclusions(preset, "throughput", named, None) == []
        assert inclusions(preset, "peers", named, None) == []
    context = included_context(RunContext(TINY), inside_peers[0])
    assert context.servers == PEER_SPECS and context.config is TINY


def test_a_part_merges_or_sets_what_it_measured() -> None:
    def measured(context: RunContext) -> dict[str, Any]:
        return {"latency": {"websockets": 2}}

    results: dict[str, Any] = {"latency": {"twinstream": 1}}
    run_part(Part("merging", measured, merges=True), RunContext(TINY), results)
    assert results == {"latency": {"twinstream": 1, "websockets": 2}}
    run_part(Part("setting", measured), RunContext(TINY), results)
    assert results == {"latency": {"websockets": 2}}


def test_every_section_the_report_lays_out_is_declared_by_its_part() -> None:
    from benchmarks.report.document import REPORT_LAYOUT

    for name in REPORT_LAYOUT:
        part, _, section = name.partition(".")
        assert (section or part) in part_named(part).sections, name
    readme_blocks = [p.readme.block for p in PARTS if p.readme is not None]
    assert readme_blocks == ["rounds-results", "scaleout-results"]
