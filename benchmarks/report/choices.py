"""Issue 25's lines of "What to choose", each computed from the run with the condition
that flips it: the protocol view, the Node peer, capacity (streams per core), the event
loop, HTTP/2 in front, the multi-turn conversation. :func:`more_choices` gives those the
run has figures for; :func:`benchmarks.report.verdict.choose` appends them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .capacity import capacity_choice, loop_choice
from .conversation import conversation_choice
from .http2 import http2_choice
from .node import node_choice
from .protocols import protocol_choice

__all__ = ["CHOICES", "more_choices"]

#: each returns its line, or None when the run has no figures for it
CHOICES: list[Callable[[dict[str, Any]], str | None]] = [
    node_choice,
    protocol_choice,
    capacity_choice,
    loop_choice,
    http2_choice,
    conversation_choice,
]


def more_choices(results: dict[str, Any]) -> list[str]:
    return [line for line in (choice(results) for choice in CHOICES) if line]
