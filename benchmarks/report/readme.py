"""The README's results block: the run line, the headline table, the rounds, the link
profiles and "what to choose", rendered from one run's ``results.json``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..targets import PARITY
from .capacity import capacity_table
from .conversation import conversation_table
from .format import fmt
from .headtohead import readme_table
from .http2 import http2_table
from .protocols import protocol_table
from .sections import network_summary
from .summary import summary_table
from .verdict import busy_banner, choose

__all__ = ["render_results"]

_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 10: "ten"}

#: issue 25's tables, each shown when the run has its figures: (lead-in, table)
_ISSUE_25_TABLES: tuple[tuple[str, Callable[[dict[str, Any]], str | None]], ...] = (
    (
        "Capacity: streams at 30 tokens/s raised until the p99 delivery delay passed 100 ms "
        "or under 99 % arrived (every level on a fresh server; the client load shares the "
        "cores; the report plots the knee):",
        capacity_table,
    ),
    (
        "Every protocol view twinstream speaks, in one run (bytes per token at a proxy; CPU "
        "with every stream on a new session):",
        protocol_table,
    ),
    (
        "HTTP/2 in front (Debian's nginx, TLS) against HTTP/1.1, in headless Chromium:",
        http2_table,
    ),
    (
        "A 20-turn conversation, each turn waiting for the answer (ms per turn; connections "
        "opened):",
        conversation_table,
    ),
)


def _run_line(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    config = meta.get("config", {})
    versions = meta.get("versions", {})
    preset = config.get("name")
    which = "the full suite" if preset == "full" else f"preset `{preset}`"
    return (
        f"Figures from one run of `{meta.get('command') or 'python -m benchmarks'}` ({which}, "
        f"{fmt(meta.get('duration_s'), 0)} s, {str(meta.get('started', ''))[:10]}) on "
        f"{meta.get('cpus')} cores of a shared {meta.get('cpu_model')}, Python "
        f"{meta.get('python')}, tornado {versions.get('tornado')}, websockets "
        f"{versions.get('websockets')}, sse-starlette {versions.get('sse-starlette')}; "
        f"synthetic model at {fmt(config.get('tokens_per_second'), 0)} tokens/s with "
        f"{fmt(config.get('first_token_latency'), 2)} s to the first token. Medians unless "
        f"marked; compare ratios, not absolute values across machines.{_resumptions(meta)}"
    )


def _resumptions(meta: dict[str, Any]) -> str:
    """What the run line says of a run resumed with ``--resume`` (nothing if it was not)."""
    said = []
    for resumption in meta.get("resumptions", []):
        parts = ", ".join(resumption.get("parts", [])) or "nothing left"
        changed = "; ".join(
            f"`{name}` {change.get('was')} → {change.get('now')}"
            for name, change in resumption.get("changed_settings", {}).items()
        )
        said.append(
            f" Resumed on {str(resumption.get('started', ''))[:10]} at commit "
            f"{resumption.get('commit', '?')} (`{resumption.get('command', '')}`) for {parts}"
            + (f", with {changed}" if changed else "")
            + "."
        )
    return "".join(said)


def render_results(results: dict[str, Any]) -> str:
    """The README's results block for ``results``."""
    parts = [_run_line(results)]
    banner = busy_banner(results)
    if banner:
        parts.append(banner)
    parts.append(summary_table(results))
    rounds = readme_table(results)
    if rounds:
        data = results["head_to_head"]
        parts += [
            f"Issue 8's targets, measured head to head: {data['rounds']} rounds, each "
            f"running all {_WORDS.get(len(data['contenders']), len(data['contenders']))} "
            "servers one after another on fresh servers, in an order that "
            "changes each round; median (min–max) of the rounds, the reference's median, "
            "and the verdict on the ratio of medians with the rounds where the same-round "
            "pair met it and the 95 % interval of the same-round ratios' geometric mean "
            "(*within noise*: the interval does not lie wholly on the verdict's side of the "
            f"target, so another run may turn the verdict; *at parity*: it lies within "
            f"±{PARITY:.0%} of the target's limit, so the two are equal within the noise, "
            "which meets the target). The table above is one "
            "measurement per server, minutes apart:",
            rounds,
        ]
    network = network_summary(results)
    if network:
        parts += ["Through the link profiles (twinstream; the report has the peers too):", network]
    for intro, render in _ISSUE_25_TABLES:
        rendered = render(results)
        if rendered:
            parts += [intro, rendered]
    statements = choose(results)
    if statements:
        parts += ["What to choose, from this run:", "\n".join(f"- {s}" for s in statements)]
    return "\n\n".join(parts)
