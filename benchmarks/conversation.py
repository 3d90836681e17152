"""A 20-turn conversation: each turn waits for the previous answer, as a chat or a tool
loop does. Where a socket kept open should pay off (and where OpenAI claims its gain for
the Responses API's WebSocket mode): no new request head, no new connection per turn.

For every view of :data:`benchmarks.views.VIEWS` (twinstream WebSocket on one socket,
twinstream SSE and the ``/v1`` chat chunks with a request per turn, and the Responses and
AI SDK transports as they join the registry) and, for the views that make a request per
turn, once more with a new connection per turn (a client that does not keep connections
alive, or a proxy that closes them), through each link profile of
``conversation_profiles`` (:data:`benchmarks.links.PROFILES`: round trip, jitter and
stalls from the suite's proxy; bandwidth caps are not applied here, a turn's few kilobytes
do not fill a link): ``conversation_turns`` turns of ``conversation_tokens`` tokens on
twinstream with the model unthrottled, so the time is the transport's, not the model's.

Measured per variant: the conversation's total time, each turn's time to its first token
and to its end, connections opened, bytes both ways.

Run alone: ``python -m benchmarks conversation [--quick] [--profiles 3g,poor]``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from .clients import Endpoint, prompts_with_tokens, run_with_deadline
from .config import SuiteConfig
from .links import PROFILES, Profile
from .proxy import CountingProxy
from .servers import TWINSTREAM, ServerProcess
from .stats import summarize
from .views import VIEWS, View

__all__ = ["variants", "run_conversation"]


def variants(views: Sequence[View] = VIEWS) -> list[tuple[str, View, bool]]:
    """``(label, view, a new session per turn)``: every view on one session, and each view
    whose session is a request per turn (SSE) once more with a new connection per turn."""
    chosen = [(view.name, view, False) for view in views]
    chosen += [
        (f"{view.name}, new connection per turn", view, True)
        for view in views
        if view.transport == "sse"
    ]
    return chosen


async def _conversation(
    view: View, fresh: bool, upstream: Endpoint, profile: Profile, turns: int, tokens: int
) -> dict[str, Any]:
    prompts = prompts_with_tokens(turns, tokens, f"turns-{view.name}")
    async with CountingProxy(upstream.host, upstream.port, profile.impairment) as proxy:
        endpoint = upstream.with_port(proxy.port)
        first: list[float] = []
        whole: list[float] = []
        errors = 0
        received = 0
        session = view.open(endpoint, False)
        began = time.perf_counter()
        try:
            for prompt in prompts:
                if fresh:
                    await session.close()
                    session = view.open(endpoint, False)
                done = await session.complete(prompt, tokens)
                received += done.tokens
                errors += 1 if done.error else 0
                if done.first_token is not None:
                    first.append(done.first_token)
                whole.append(done.seconds)
        finally:
            total = time.perf_counter() - began
            await session.close()
        await asyncio.sleep(0.05)
        return {
            "turns": len(prompts),
            "tokens": received,
            "errors": errors,
            "seconds": round(total, 3),
            "per_turn_ms": round(1000 * total / len(prompts), 1),
            "first_token_ms": summarize(first, 1000.0),
            "turn_ms": summarize(whole, 1000.0),
            "connections": len(proxy.connections),
            "bytes_up": proxy.bytes_up,
            "bytes_down": proxy.bytes_down,
        }


def run_conversation(
    config: SuiteConfig,
    profiles: Sequence[str] | None = None,
    views: Sequence[View] = VIEWS,
    progress: bool = True,
) -> dict[str, Any]:
    """Every variant of :func:`variants` through every profile; results by profile."""
    chosen = [PROFILES[name] for name in profiles or config.conversation_profiles]
    plan = variants(views)
    results: dict[str, Any] = {
        "turns": config.conversation_turns,
        "tokens": config.conversation_tokens,
        "profiles": {},
    }
    bar = tqdm(total=len(chosen) * len(plan), desc="conversation", unit="run",
               disable=not progress, leave=False)  # fmt: skip
    # the model unthrottled: a turn's time is the transport's (and the link's)
    with ServerProcess(TWINSTREAM.command(0, 0)) as server, bar:
        upstream = Endpoint(server.url)
        for profile in chosen:
            measured: dict[str, Any] = {}
            for label, view, fresh in plan:
                bar.set_postfix_str(f"{profile.name}: {label}")
                measured[label] = run_with_deadline(
                    _conversation(
                        view,
                        fresh,
                        upstream,
                        profile,
                        config.conversation_turns,
                        config.conversation_tokens,
                    ),
                    300,
                    f"conversation on {profile.name}, {label}",
                )
                measured[label]["view"] = view.name
                measured[label]["new_connection_per_turn"] = fresh
                bar.update()
            results["profiles"][profile.name] = {
                "description": profile.describe(),
                "variants": measured,
            }
    return results
