"""The README's results block: the run line, the headline table, the rounds, the link
profiles and "what to choose", rendered from one run's ``results.json``."""

from __future__ import annotations

from typing import Any

from ..targets import PARITY
from .format import fmt
from .headtohead import readme_table
from .sections import network_summary
from .summary import summary_table
from .verdict import busy_banner, choose

__all__ = ["render_results"]


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
        "marked; compare ratios, not absolute values across machines."
    )


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
            "running all four servers one after another on fresh servers, in an order that "
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
    statements = choose(results)
    if statements:
        parts += ["What to choose, from this run:", "\n".join(f"- {s}" for s in statements)]
    return "\n\n".join(parts)
