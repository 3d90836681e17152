"""The suite's parts, in one registry.

Each :class:`Part` declares how it runs, its rows in the headline table, its
sections of ``report.md`` and its README block, if any. :data:`INCLUDES` says,
per preset, which parts run inside which (the full preset measures issue 8's
bounds inside ``throughput`` and the rounds inside ``peers``), so no part calls
another. :func:`benchmarks.suite.run_suite` loops over the parts a run names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import connections, stuck
from .config import SuiteConfig
from .report.capacity import capacity_section
from .report.conversation import conversation_section
from .report.details import (
    latency_section,
    open_connections_section,
    reconnect_section,
    sweep_section,
    unthrottled_section,
    wire_section,
)
from .report.headline import SummaryRow, latency_rows, reconnect_rows, throughput_rows
from .report.headtohead import headtohead_section, rounds_run_section
from .report.http2 import http2_section
from .report.protocols import protocols_section
from .report.scaleout import readme_section, scaleout_section
from .report.sections import browser_rows, browser_section, churn_section, network_section
from .servers import PEER_SPECS, TWINSTREAM, ServerSpec

__all__ = [
    "RunContext",
    "ReadmeBlock",
    "Part",
    "Inclusion",
    "PARTS",
    "INCLUDES",
    "part_named",
    "part_names",
    "inclusions",
    "run_part",
]

Results = dict[str, Any]


@dataclass(frozen=True)
class RunContext:
    """What a part's run is given."""

    config: SuiteConfig
    url: str | None = None  # a running twinstream to measure instead of starting one
    progress: bool = True
    #: the servers to measure when another part includes this one (None: the part's own)
    servers: tuple[ServerSpec, ...] | None = None


@dataclass(frozen=True)
class ReadmeBlock:
    """A README block rendered from a run of this part alone."""

    block: str  # the marker's name in README.md
    results_key: str  # what the part adds to results.json
    render: Callable[[Results], str | None]  # None: the run has nothing to show
    record: str  # file under docs/ keeping the figures, for the README test
    what: str  # how the command's message names the figures
    missing: str  # why a run rendered nothing


def _no_rows(results: Results) -> list[SummaryRow]:
    return []


@dataclass(frozen=True)
class Part:
    """One part of the suite."""

    name: str
    #: measures and returns {results key: data}
    run: Callable[[RunContext], Results]
    #: "default" (run when no part is named), "extra" (run alone or inside another
    #: part) or "optional" (run only when named)
    kind: str = "default"
    #: merge its data into what other parts put under the same key, instead of setting it
    merges: bool = False
    #: measures a server given with --url instead of starting its own
    takes_url: bool = False
    summary_rows: Callable[[Results], list[SummaryRow]] = _no_rows
    #: its report.md text, by section name (the main one named after the part)
    sections: Mapping[str, Callable[[Results], list[str]]] = field(default_factory=dict)
    readme: ReadmeBlock | None = None


@dataclass(frozen=True)
class Inclusion:
    """A part run inside another, after the including part's own measures."""

    part: str
    servers: tuple[ServerSpec, ...] | None = None
    #: skipped when the run measures a server at --url (it needs servers it starts)
    needs_own_servers: bool = False


# -- how each part runs (imported when it runs: some need Chromium, Redis or root) ------


def _run_latency(context: RunContext) -> Results:
    from .latency import run_latency

    return {
        "latency": run_latency(
            context.config, (TWINSTREAM,), url=context.url, progress=context.progress
        )
    }


def _run_throughput(context: RunContext) -> Results:
    from .throughput import run_throughput

    return {
        "throughput": run_throughput(
            context.config, (TWINSTREAM,), url=context.url, progress=context.progress
        )
    }


def _run_reconnect(context: RunContext) -> Results:
    from .reconnect import run_reconnect

    return {"reconnect": run_reconnect(context.config, url=context.url, progress=context.progress)}


def _run_connections(context: RunContext) -> Results:
    from .connections import ALL_SPECS, run_connections

    servers = context.servers or ALL_SPECS
    return {"connections": run_connections(context.config, servers, progress=context.progress)}


def _run_stuck(context: RunContext) -> Results:
    from .stuck import run_stuck

    return {"stuck": run_stuck(context.config, TWINSTREAM, progress=context.progress)}


def _run_headtohead(context: RunContext) -> Results:
    from .headtohead import run_head_to_head

    # a median of one round would be one sample dressed as a median
    rounds = max(2, context.config.head_to_head_rounds)
    config = context.config.replace(head_to_head_rounds=rounds)
    return {"head_to_head": run_head_to_head(config, progress=context.progress)}


def _run_peers(context: RunContext) -> Results:
    from .peer_comparison import run_peers

    return run_peers(context.config, progress=context.progress)


def _run_network(context: RunContext) -> Results:
    from .network import run_network

    return {"network": run_network(context.config, progress=context.progress)}


def _run_browser(context: RunContext) -> Results:
    from .browser import run_browser

    return {"browser": run_browser(context.config, progress=context.progress)}


def _run_churn(context: RunContext) -> Results:
    from .churn import run_churn

    return {"churn": run_churn(context.config, progress=context.progress)}


def _run_scaleout(context: RunContext) -> Results:
    from .capacity import run_store_scaling  # what a second process carries
    from .scaleout import run_scaleout  # memory vs Redis store, 1 vs 2 processes

    config = context.config
    results = run_scaleout(config, progress=context.progress)
    if config.scaleout_capacity_cores and "skipped" not in results:
        results["capacity"] = run_store_scaling(config, progress=context.progress)
    return {"scaleout": results}


def _run_protocols(context: RunContext) -> Results:
    from .protocols import run_protocols  # every view of benchmarks.views, on twinstream

    return {"protocols": run_protocols(context.config, progress=context.progress)}


def _run_capacity(context: RunContext) -> Results:
    from .capacity import run_capacity  # every server, streams raised until delivery slows

    config = context.config
    return {"capacity": run_capacity(config, store=config.store, progress=context.progress)}


def _run_http2(context: RunContext) -> Results:
    from .http2 import run_http2  # nginx (TLS, HTTP/1.1 and HTTP/2) and Chromium

    return {"http2": run_http2(context.config, progress=context.progress)}


def _run_conversation(context: RunContext) -> Results:
    from .conversation import run_conversation  # 20 turns per view through the link profiles

    return {"conversation": run_conversation(context.config, progress=context.progress)}


def _or_not_run(render: Callable[[Results], str], heading: str) -> Callable[[Results], list[str]]:
    return lambda results: [render(results) or f"{heading}\n\n_not run_"]


#: every part; the order is the headline table's (and, by kind, the command line's)
PARTS: tuple[Part, ...] = (
    Part(
        "latency",
        _run_latency,
        merges=True,
        takes_url=True,
        summary_rows=latency_rows,
        sections={"latency": latency_section},
    ),
    Part(
        "throughput",
        _run_throughput,
        merges=True,
        takes_url=True,
        summary_rows=throughput_rows,
        sections={
            "sweep": sweep_section,
            "open_connections": open_connections_section,
            "unthrottled": unthrottled_section,
            "wire": wire_section,
        },
    ),
    Part(
        "reconnect",
        _run_reconnect,
        takes_url=True,
        summary_rows=reconnect_rows,
        sections={"reconnect": reconnect_section},
    ),
    Part(
        "connections",
        _run_connections,
        kind="extra",
        merges=True,
        summary_rows=connections.summary_rows,
        sections={
            "connections": _or_not_run(connections.report_section, "## Memory per idle connection")
        },
    ),
    Part(
        "stuck",
        _run_stuck,
        kind="extra",
        summary_rows=stuck.summary_rows,
        sections={"stuck": _or_not_run(stuck.report_section, "## Stuck readers")},
    ),
    Part(
        "headtohead",
        _run_headtohead,
        kind="extra",
        sections={"headtohead": headtohead_section},
        readme=ReadmeBlock(
            "rounds-results",
            "head_to_head",
            rounds_run_section,
            "rounds-run.json",
            "head-to-head rounds",
            "the headtohead part ran no rounds",
        ),
    ),
    Part("peers", _run_peers, merges=True),
    Part("network", _run_network, sections={"network": network_section}),
    Part(
        "browser",
        _run_browser,
        summary_rows=browser_rows,
        sections={"browser": browser_section},
    ),
    Part("churn", _run_churn, sections={"churn": churn_section}),
    Part("protocols", _run_protocols, sections={"protocols": protocols_section}),
    Part("capacity", _run_capacity, sections={"capacity": capacity_section}),
    Part("http2", _run_http2, sections={"http2": http2_section}),
    Part("conversation", _run_conversation, sections={"conversation": conversation_section}),
    Part(
        "scaleout",
        _run_scaleout,
        kind="optional",
        sections={"scaleout": scaleout_section},
        readme=ReadmeBlock(
            "scaleout-results",
            "scaleout",
            readme_section,
            "scaleout-run.json",
            "scale-out figures",
            "the scaleout part did not run or was skipped",
        ),
    ),
)

#: preset -> part -> the parts it runs inside itself, unless they are named on their
#: own (the full preset only: --quick stays under three minutes)
INCLUDES: dict[str, dict[str, tuple[Inclusion, ...]]] = {
    "full": {
        # issue 8's bounds on twinstream; they need servers of their own
        "throughput": (
            Inclusion("connections", (TWINSTREAM,), needs_own_servers=True),
            Inclusion("stuck", needs_own_servers=True),
        ),
        # the reference servers' idle connections, then all four servers in rounds
        "peers": (Inclusion("connections", PEER_SPECS), Inclusion("headtohead")),
    }
}

_BY_NAME = {part.name: part for part in PARTS}


def part_named(name: str) -> Part:
    """The part called ``name`` (KeyError for an unknown one)."""
    return _BY_NAME[name]


def part_names(kind: str) -> tuple[str, ...]:
    """The names of the parts of ``kind``, in registry order."""
    return tuple(part.name for part in PARTS if part.kind == kind)


def inclusions(preset: str, name: str, named: list[str], url: str | None) -> list[Inclusion]:
    """What part ``name`` runs inside itself with ``preset``, given the parts the run
    ``named`` and the ``url`` it measures."""
    return [
        inclusion
        for inclusion in INCLUDES.get(preset, {}).get(name, ())
        if inclusion.part not in named and not (inclusion.needs_own_servers and url is not None)
    ]


def run_part(part: Part, context: RunContext, results: Results) -> None:
    """Run ``part`` and put what it measured into ``results``."""
    for key, data in part.run(context).items():
        if part.merges:
            results.setdefault(key, {}).update(data)
        else:
            results[key] = data


def included_context(context: RunContext, inclusion: Inclusion) -> RunContext:
    """``context`` for a part run inside another."""
    return replace(context, servers=inclusion.servers)
