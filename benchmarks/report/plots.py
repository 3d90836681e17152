"""The report's PNG plots (matplotlib, Agg): latency CDFs, the throughput sweep and
the network profiles' delivery delay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .capacity import plot_capacity
from .format import get
from .sections import variants_of

__all__ = ["plot_all", "plot_network"]


def plot_all(results: dict[str, Any], out: Path) -> list[str]:
    """Write the PNG plots; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    latency = results.get("latency", {})
    series = [
        (server, transport, data["cdf_ms"])
        for server, server_data in latency.items()
        for transport, data in server_data.get("transports", {}).items()
    ]
    if series:
        panels = (
            ("ttft_cold", "TTFT, cold (ms)"),
            ("ttft_warm", "TTFT, warm (ms)"),
            ("delivery_delay_single", "Delivery delay, 1 stream (ms)"),
            ("delivery_delay_concurrent", "Delivery delay, many streams (ms)"),
        )
        # the real sample count (the stored CDF may be thinned)
        counts = {
            "ttft_cold": ("single", "cold", "ttft_ms", "n"),
            "ttft_warm": ("single", "warm", "ttft_ms", "n"),
            "delivery_delay_single": ("single", "delivery_delay_ms", "n"),
            "delivery_delay_concurrent": ("concurrent", "delivery_delay_ms", "n"),
        }
        figure, axes = plt.subplots(2, 2, figsize=(11, 8))
        for axis, (key, title) in zip(axes.flat, panels):
            for server, transport, cdf in series:
                values = cdf.get(key) or []
                if not values:
                    continue
                n = get(latency, server, "transports", transport, *counts[key]) or len(values)
                fractions = [(i + 1) / len(values) for i in range(len(values))]
                style = "-" if server == "twinstream" else "--"
                # few samples: show each one, not a line that suggests a distribution
                marker = "o" if len(values) < 30 else None
                axis.step(
                    values,
                    fractions,
                    style,
                    where="post",
                    marker=marker,
                    markersize=3,
                    label=f"{server} {transport} (n={n:,})",
                )
            axis.set_title(title)
            axis.set_ylabel("fraction ≤ x")
            if key.startswith("delivery"):
                axis.set_xscale("log")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        figure.suptitle("Latency CDFs (solid: twinstream, dashed: peers)")
        figure.tight_layout()
        figure.savefig(out / "latency_cdf.png", dpi=110)
        plt.close(figure)
        written.append("latency_cdf.png")
    throughput = results.get("throughput", {})
    if throughput:
        # delivered as a share of offered (delivered events/s alone restates the offered load)
        figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        for server, data in throughput.items():
            for transport, levels in data.get("sweep", {}).items():
                streams = [level["streams"] for level in levels]
                style = "o-" if server == "twinstream" else "s--"
                n = sum(level.get("delta_events") or 0 for level in levels)
                label = f"{server} {transport} (n={n:,} tokens)"
                share = [
                    100 * level["delivered_events_per_s"] / level["offered_events_per_s"]
                    if level.get("offered_events_per_s") and level.get("delivered_events_per_s")
                    else float("nan")
                    for level in levels
                ]
                axes[0].plot(streams, share, style, label=label)
                axes[1].plot(
                    streams,
                    [level["server_cpu_ms_per_1k_events"] or float("nan") for level in levels],
                    style,
                    label=label,
                )
                axes[2].plot(
                    streams,
                    [level["memory_per_stream_kib"] or float("nan") for level in levels],
                    style,
                    label=label,
                )
        for axis, title in zip(
            axes,
            (
                "Delivered, % of offered",
                "Server CPU per 1,000 events (ms)",
                "Memory per live stream (KiB)",
            ),
        ):
            axis.set_xscale("log")
            axis.set_xlabel("concurrent streams")
            axis.set_title(title)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
        axes[0].axhline(100, color="k", linestyle=":", linewidth=1)
        figure.suptitle("Throughput vs concurrency")
        figure.tight_layout()
        figure.savefig(out / "throughput.png", dpi=110)
        plt.close(figure)
        written.append("throughput.png")
    written += plot_network(results, out)
    written += plot_capacity(results, out)
    return written


def plot_network(results: dict[str, Any], out: Path) -> list[str]:
    """Delivery-delay CDFs, one panel per profile, a line per variant (n in the legend)."""
    profiles = get(results, "network", "profiles") or {}
    shown = [(n, p) for n, p in profiles.items() if variants_of(p)]
    if not shown:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(shown))
    rows = (len(shown) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4 * rows), squeeze=False)
    for axis, (name, profile) in zip(axes.flat, shown):
        for label, data in variants_of(profile).items():
            values = get(data, "cdf_ms", "delivery_delay") or []
            if not values:
                continue
            n = (get(data, "cold", "delivery_delay_ms", "n") or 0) + (
                get(data, "keep_up", "delivery_delay_ms", "n") or 0
            )
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            style = "-" if label.startswith("twinstream") else "--"
            axis.step(values, fractions, style, where="post", label=f"{label} (n={n:,})")
        axis.set_title(f"{name}: {profile.get('description', '')}", fontsize=9)
        axis.set_xlabel("delivery delay (ms)")
        axis.set_ylabel("fraction ≤ x")
        axis.set_xscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(shown) :]:
        axis.axis("off")
    figure.suptitle("Delivery delay per network profile (solid: twinstream, dashed: peers)")
    figure.tight_layout()
    figure.savefig(out / "network_delay_cdf.png", dpi=110)
    plt.close(figure)
    return ["network_delay_cdf.png"]
