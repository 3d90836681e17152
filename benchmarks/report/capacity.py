"""Capacity in the report and the README: streams per core per server and transport,
the knee (p99 delivery delay against streams, one line per server) as a table and a
plot, and the "what to choose" lines it supports (the server, the event loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .format import BUSY_PERCENT, fmt, get, table

__all__ = [
    "capacity_cell",
    "held_and_failed",
    "capacity_table",
    "knee_table",
    "capacity_section",
    "plot_capacity",
    "capacity_choice",
    "loop_choice",
    "busy_capacity_levels",
]


def _contenders(results: dict[str, Any]) -> dict[str, Any]:
    return get(results, "capacity", "contenders") or {}


def capacity_cell(entry: dict[str, Any]) -> str:
    """A search's capacity as a cell: ``≥ N`` if every level held, ``< N`` if none did."""
    held = entry.get("capacity") or 0
    if entry.get("at_limit"):
        return f"≥ {fmt(held)}"
    return fmt(held) if held else f"< {fmt(min(p['streams'] for p in entry['points']))}"


def held_and_failed(
    entry: dict[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A search's largest level that held and its smallest that failed (None: none)."""
    held = [p for p in entry["points"] if p["holds"]]
    failed = [p for p in entry["points"] if not p["holds"]]
    return (
        max(held, key=lambda p: p["streams"]) if held else None,
        min(failed, key=lambda p: p["streams"]) if failed else None,
    )


def _busy(point: dict[str, Any] | None) -> bool:
    busy = get(point, "machine_busy_percent")
    return busy is not None and busy >= BUSY_PERCENT


def busy_capacity_levels(results: dict[str, Any]) -> list[tuple[str, float]]:
    """``(figure, machine busy %)`` for each level that failed while every core was busy:
    its delay may be the machine's (other work, the client load), not the server's."""
    return [
        (f"capacity at {fmt(point['streams'])} streams — {name}", point["machine_busy_percent"])
        for name, entry in _contenders(results).items()
        for point in entry["points"]
        if not point["holds"] and _busy(point)
    ]


def capacity_table(results: dict[str, Any]) -> str | None:
    """One row per server and transport: streams held, streams per core, the p99 delay
    and the server's CPU at the largest level that held, the first level that failed."""
    entries = _contenders(results)
    if not entries:
        return None
    rows = []
    for name, entry in entries.items():
        top, first_fail = held_and_failed(entry)
        rows.append(
            [
                name,
                capacity_cell(entry),
                fmt(entry.get("streams_per_core"), 0) if top is not None else "0",
                fmt(get(top, "p99_delay_ms")),
                fmt(get(top, "server_cpu_percent")),
                (
                    f"{fmt(first_fail['streams'])}: p99 {fmt(first_fail['p99_delay_ms'])} ms, "
                    f"{fmt(first_fail['delivered_percent'], 2)} % delivered"
                    + (
                        f" (machine {fmt(first_fail['machine_busy_percent'], 0)} % busy)"
                        if _busy(first_fail)
                        else ""
                    )
                )
                if first_fail
                else "—",
            ]
        )
    header = [
        "Server",
        "Streams held",
        "Streams per core",
        "p99 delay there (ms)",
        "Server CPU there (% of a core)",
        "First level that failed",
    ]
    return table(header, rows)


def knee_table(results: dict[str, Any]) -> str | None:
    """p99 delay (ms) at each level measured, one column per server."""
    entries = _contenders(results)
    if not entries:
        return None
    levels = sorted({p["streams"] for e in entries.values() for p in e["points"]})
    by = {name: {p["streams"]: p for p in entry["points"]} for name, entry in entries.items()}
    rows = [
        [fmt(streams)]
        + [
            fmt(get(by[name].get(streams), "p99_delay_ms"))
            + ("" if by[name].get(streams) is None or by[name][streams]["holds"] else " ✗")
            for name in entries
        ]
        for streams in levels
    ]
    return table(["Streams", *entries], rows)


def capacity_section(results: dict[str, Any]) -> list[str]:
    heading = "## Capacity: streams per core"
    data = results.get("capacity")
    rendered = capacity_table(results)
    if not data or rendered is None:
        return [f"{heading}\n\n_not run_"]
    intro = (
        f"Streams at {fmt(data.get('tokens_per_second'), 0)} tokens/s each, "
        f"{fmt(data.get('max_tokens'))} tokens per stream, raised until delivery falls "
        f"behind: a level holds while the p99 delivery delay stays at or under "
        f"{fmt(data.get('p99_limit_ms'), 0)} ms and at least "
        f"{fmt(data.get('delivered_percent_limit'), 0)} % of the offered tokens arrive. "
        f"Coarse search from {fmt(data.get('start'))} streams, doubling up to "
        f"{fmt(data.get('limit'))}; then {fmt(data.get('fine_steps'))} bisections. Every level "
        "on a fresh server; the client load shares the machine's cores. Streams per core: "
        "the largest level held over the server's processes."
    )
    knee = knee_table(results) or ""
    scaling = "".join(f"\n\n{line}" for line in store_scaling(results))
    return [
        f"{heading}\n\n{intro}\n\n{rendered}\n\nThe knee: p99 delivery delay (ms) at each "
        f"level (✗: the level did not hold):\n\n{knee}{scaling}"
    ]


def store_scaling(results: dict[str, Any]) -> list[str]:
    """Per transport on a shared store: what a second process carries, in streams per
    machine, against one process on that store and one in memory."""
    entries = _contenders(results)
    lines = []
    for transport in ("sse", "ws"):
        shared = {
            (e["store"], e["processes"]): e
            for e in entries.values()
            if e.get("store") != "memory" and e.get("transport") == transport
        }
        memory = next(
            (
                e
                for e in entries.values()
                if e.get("server") == "twinstream"
                and e.get("store") == "memory"
                and e.get("loop") == "asyncio"
                and e.get("transport") == transport
            ),
            None,
        )
        for store in sorted({store for store, _ in shared}):
            one, two = shared.get((store, 1)), shared.get((store, 2))
            if not one or not two or not one["capacity"]:
                continue
            against_memory = (
                f", {two['capacity'] / memory['capacity']:.2f}× one process in memory "
                f"({fmt(memory['capacity'])})"
                if memory and memory["capacity"]
                else ""
            )
            both_at_limit = one["at_limit"] and two["at_limit"]
            limited = " (both at the largest level tried)" if both_at_limit else ""
            lines.append(
                f"twinstream {transport} on {store}: two processes carried "
                f"{fmt(two['capacity'])} streams, {two['capacity'] / one['capacity']:.2f}× one "
                f"process's {fmt(one['capacity'])}{against_memory}{limited}."
            )
    return lines


def plot_capacity(results: dict[str, Any], out: Path) -> list[str]:
    """``capacity_knee.png``: p99 delay against streams, one line per server."""
    entries = _contenders(results)
    if not entries:
        return []
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    for name, entry in entries.items():
        points = sorted(entry["points"], key=lambda p: p["streams"])
        xs = [p["streams"] for p in points if p.get("p99_delay_ms") is not None]
        ys = [p["p99_delay_ms"] for p in points if p.get("p99_delay_ms") is not None]
        axis.plot(xs, ys, marker="o", label=name)
    limit = get(results, "capacity", "p99_limit_ms")
    if limit:
        axis.axhline(limit, color="k", linestyle=":", linewidth=1)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("concurrent streams at 30 tokens/s")
    axis.set_ylabel("p99 delivery delay (ms)")
    axis.set_title("Capacity: the knee")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "capacity_knee.png", dpi=110)
    plt.close(figure)
    return ["capacity_knee.png"]


def _per_core(results: dict[str, Any], name: str) -> float | None:
    entry = _contenders(results).get(name)
    return entry.get("streams_per_core") if entry else None


def capacity_choice(results: dict[str, Any]) -> str | None:
    """Which server carries the most streams per core, twinstream's rank, what flips it."""
    entries = _contenders(results)
    plain = {
        n: e["streams_per_core"]
        for n, e in entries.items()
        if e.get("store") == "memory" and e.get("loop") == "asyncio"
    }
    if len(plain) < 2:
        return None
    if all(entries[n].get("at_limit") for n in plain):
        held = fmt(min(plain.values()), 0)
        return (
            f"**Chats per core at 30 tokens/s: not separated by this run.** Every server "
            f"held the largest level tried ({held} streams per core) with the p99 delay under "
            "100 ms and 99 % delivered; the full preset raises the streams until each falls "
            "behind."
        )
    busy = [n for n in plain if any(not p["holds"] and _busy(p) for p in entries[n]["points"])]
    if busy:
        return (
            "**Chats per core at 30 tokens/s: the machine was too busy to tell.** "
            f"{', '.join(busy)} fell behind only at levels measured while every core was at "
            f"least {BUSY_PERCENT:.0f} % busy (other work or the client load), so the delay "
            "may be the machine's, not the server's; run `python -m benchmarks capacity` on "
            "a machine with room (the server's CPU at each level is in the report)."
        )
    best = max(plain, key=plain.__getitem__)
    mine = {n: v for n, v in plain.items() if n.startswith("twinstream")}
    peers = {n: v for n, v in plain.items() if not n.startswith("twinstream")}
    if not mine or not peers:
        return None
    my_best = max(mine, key=mine.__getitem__)
    their_best = max(peers, key=peers.__getitem__)
    behind = peers[their_best] > mine[my_best]
    gap = (
        f"twinstream is behind: {fmt(mine[my_best], 0)} ({my_best}) against "
        f"{fmt(peers[their_best], 0)} ({their_best}), "
        f"{100 * (1 - mine[my_best] / peers[their_best]):.0f} % fewer"
        if behind
        else f"the best peer, {their_best}, carried {fmt(peers[their_best], 0)}"
    )
    return (
        f"**Most chats per core at 30 tokens/s: {best}** ({fmt(plain[best], 0)} streams per core "
        f"before the p99 delay passed 100 ms or delivery fell under 99 %); {gap}. Size a "
        "deployment by it with the client load elsewhere: on this shared machine the "
        "load generator took cores too, so a dedicated server core carries more, and the "
        "order can flip when the clients, not the server, saturate first."
    )


def loop_choice(results: dict[str, Any]) -> str | None:
    """What uvloop buys each Python server, in streams per core (and head to head)."""
    entries = _contenders(results)
    gains = []
    for name, entry in entries.items():
        if entry.get("loop") != "uvloop":
            continue
        base = name.replace("+uvloop", "")
        before, after = _per_core(results, base), entry.get("streams_per_core")
        if before and after:
            gains.append((base, before, after))
    if not gains:
        return None
    parts = ", ".join(f"{b} {fmt(x, 0)} → {fmt(y, 0)}" for b, x, y in gains)
    better = [b for b, x, y in gains if y > 1.1 * x]
    lead = (
        f"**Event loop: uvloop for {', '.join(better)}.**"
        if better
        else "**Event loop: uvloop changes little here.**"
    )
    return (
        f"{lead} Streams per core on asyncio's loop → on uvloop: {parts}. It matters only "
        "near capacity: below the knee both loops deliver every token on time, and a server "
        "that runs out of cores elsewhere (serialising JSON, the store) gains less."
    )
