"""benchmarks.protocols: the protocol table, tiny, against a real twinstream (shape and
sanity only, never timings); benchmarks.views: every view streams the model's tokens."""

from __future__ import annotations

import asyncio

from benchmarks.clients import Endpoint, prompts_with_tokens
from benchmarks.config import TINY
from benchmarks.protocols import run_protocols
from benchmarks.report.protocols import protocol_choice, protocol_table, protocols_section
from benchmarks.servers import TWINSTREAM, ServerProcess
from benchmarks.views import VIEWS, view_named
from server.backends.synthetic import synthetic_tokens


def test_every_view_counts_the_models_tokens_cold_then_warm() -> None:
    prompt = prompts_with_tokens(1, 12, "views")[0]
    expected = len(synthetic_tokens(prompt)[:12])
    with ServerProcess(TWINSTREAM.command(0, 0)) as server:

        async def run() -> list[tuple[str, list[int], list[bool]]]:
            seen = []
            for view in VIEWS:
                session = view.open(Endpoint(server.url), False)
                try:
                    completions = [await session.complete(prompt, 12) for _ in range(3)]
                finally:
                    await session.close()
                assert all(c.error is None for c in completions), view.name
                assert all(c.first_token is not None for c in completions), view.name
                seen.append(
                    (
                        view.name,
                        [c.tokens for c in completions],
                        [c.compressed for c in completions],
                    )
                )
            return seen

        seen = asyncio.run(run())
    for name, tokens, compressed in seen:
        assert tokens == [expected] * 3, name
        assert compressed == [False] * 3, name
    assert [name for name, _, _ in seen] == [view.name for view in VIEWS]
    assert view_named("chat chunks").what.startswith("POST /v1/chat/completions")


def test_protocol_table_tiny_against_a_real_server() -> None:
    data = run_protocols(TINY, progress=False)
    assert data["streams"] == TINY.protocol_streams
    assert list(data["views"]) == [view.name for view in VIEWS]
    for name, view in data["views"].items():
        plain, compressed = view["wire"]["plain"], view["wire"]["compressed"]
        assert plain["errors"] == compressed["errors"] == 0, name
        assert plain["tokens"] == compressed["tokens"] > 0, name
        assert plain["compressed"] is False and compressed["compressed"] is True, name
        assert 0 < compressed["bytes_per_token"] < plain["bytes_per_token"], name
        assert view["first_token"]["cold_ms"]["n"] == TINY.protocol_samples, name
        assert view["first_token"]["warm_ms"]["n"] == TINY.protocol_samples, name
        cpu = view["cpu"]
        assert cpu["streams"] == TINY.protocol_streams and cpu["errors"] == 0, name
        assert cpu["tokens"] == cpu["expected_tokens"] and cpu["delivered_percent"] == 100.0
    views = data["views"]
    # the chunk shape carries more per token than twinstream's own events
    chunk = views["chat chunks"]["wire"]["plain"]["bytes_per_token"]
    assert chunk > views["twinstream sse"]["wire"]["plain"]["bytes_per_token"]
    assert views["twinstream ws"]["wire"]["plain"]["bytes_per_token"] < chunk
    results = {"protocols": data}
    rendered = protocol_table(results)
    assert rendered is not None and len(rendered.splitlines()) == 2 + len(VIEWS)
    assert protocols_section(results)[0].startswith("## What each protocol view costs")
    assert protocols_section({}) == ["## What each protocol view costs\n\n_not run_"]
    line = protocol_choice(results)
    fewest = min(views, key=lambda name: views[name]["wire"]["plain"]["bytes_per_token"])
    assert line is not None and line.startswith(f"**Fewest bytes per token: {fewest}.**")
