"""benchmarks.conversation, tiny, against a real twinstream through the suite's proxy
(loopback and a profile with a round trip): the shape of its results, its report
section and "what to choose" line; never speeds beyond what the link itself forces."""

from __future__ import annotations

from benchmarks.config import TINY
from benchmarks.conversation import run_conversation, variants
from benchmarks.links import PROFILES
from benchmarks.report.conversation import (
    conversation_choice,
    conversation_section,
    conversation_table,
)
from benchmarks.views import VIEWS


def test_variants_are_every_view_and_each_sse_view_on_new_connections() -> None:
    labels = [label for label, _, _ in variants()]
    assert labels[: len(VIEWS)] == [view.name for view in VIEWS]
    assert "twinstream sse, new connection per turn" in labels
    assert "twinstream ws, new connection per turn" not in labels  # one socket throughout


def test_conversation_tiny_against_a_real_server() -> None:
    data = run_conversation(TINY, progress=False)
    turns = TINY.conversation_turns
    assert (data["turns"], data["tokens"]) == (turns, TINY.conversation_tokens)
    assert list(data["profiles"]) == list(TINY.conversation_profiles)
    for name, profile in data["profiles"].items():
        assert list(profile["variants"]) == [label for label, _, _ in variants()]
        for label, entry in profile["variants"].items():
            assert entry["errors"] == 0, (name, label)
            assert entry["turns"] == turns and entry["tokens"] == turns * TINY.conversation_tokens
            assert entry["first_token_ms"]["n"] == entry["turn_ms"]["n"] == turns
            # one connection for the whole conversation, or one per turn
            assert entry["connections"] == (turns if entry["new_connection_per_turn"] else 1)
            assert entry["bytes_up"] > 0 and entry["bytes_down"] > 0
    # a turn cannot beat the link's round trip: the request out, the answer back
    rtt_ms = 1000 * PROFILES["broadband"].rtt
    for entry in data["profiles"]["broadband"]["variants"].values():
        assert entry["turn_ms"]["p50"] >= rtt_ms
    results = {"conversation": data}
    table = conversation_table(results)
    assert table is not None and len(table.splitlines()) == 2 + len(data["profiles"])
    assert conversation_section(results)[0].startswith("## A conversation")
    assert conversation_section({}) == [
        "## A conversation: turns that wait for the answer\n\n_not run_"
    ]
    line = conversation_choice(results)
    assert line is not None and line.startswith("**A multi-turn chat or tool loop: ")
    assert "On `broadband`" in line


def _verdict(ws: float, sse: float, fresh: float) -> str:
    variants = {
        "twinstream ws": {"per_turn_ms": ws},
        "twinstream sse": {"per_turn_ms": sse},
        "twinstream sse, new connection per turn": {"per_turn_ms": fresh},
    }
    results = {"conversation": {"turns": 20, "profiles": {"poor": {"variants": variants}}}}
    line = conversation_choice(results)
    assert line is not None
    return line.split("**")[1]


def test_the_verdict_follows_the_kept_alive_requests_not_only_new_connections() -> None:
    lead = "A multi-turn chat or tool loop: "
    assert _verdict(500, 600, 1000) == lead + "WebSocket."
    assert _verdict(584.5, 572.0, 1056) == lead + "WebSocket, or SSE on a kept-alive connection."
    assert _verdict(600, 500, 1000) == lead + "SSE on a kept-alive connection."
    assert _verdict(500, 501, 502) == lead + "either."
