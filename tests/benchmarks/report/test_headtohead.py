"""benchmarks.report.headtohead: verdict cells and the rounds' tables."""

from __future__ import annotations

import pytest

from benchmarks.report.headtohead import readme_table, verdict_cell
from benchmarks.targets import (
    Target,
    judge,
    spread,
)


def test_judge_says_whether_the_paired_rounds_make_the_verdict_decisive() -> None:
    lower = Target("cpu_ms_per_1k_events", "twinstream sse", "websockets", 1.0, True)
    higher = Target("delivered_events_per_s", "twinstream sse", "websockets", 1.0, False)
    samples: dict[str, dict[str, list[float | None]]] = {
        "twinstream sse": {
            # always about 10 % below: met, and every round agrees
            "cpu_ms_per_1k_events": [27.0, 18.0, 22.5, 36.0],
            # 2-3 % below in half the rounds, as much above in the others
            "delivered_events_per_s": [29_100.0, 30_900.0, 29_400.0, 30_600.0],
        },
        "websockets": {
            "cpu_ms_per_1k_events": [30.0, 20.0, 25.0, 40.0],
            "delivered_events_per_s": [30_000.0, 30_000.0, 30_000.0, 30_000.0],
        },
    }
    cpu, delivered = judge(samples, (lower, higher))
    assert cpu["paired_ratio"] == pytest.approx(0.9)
    assert cpu["paired_interval"] == pytest.approx([0.9, 0.9])
    assert cpu["met"] is True and cpu["decisive"] is True
    assert verdict_cell(cpu) == "met (0.90×; 4 of 4 rounds; paired 0.9000–0.9000×)"
    # median 30,000 against 30,000: met, but the interval holds 1 on both sides,
    # and is too wide to show parity
    low, high = delivered["paired_interval"]
    assert low < 0.99 and 1.01 < high
    assert delivered["met"] is True and delivered["decisive"] is False
    assert delivered["at_parity"] is False
    assert verdict_cell(delivered).endswith(", within noise)")
    # the report's cells come from the samples, so an older results file (its
    # verdicts stored without an interval) is shown with one
    data = {
        "rounds": 4,
        "streams": 1000,
        "latency_streams": 500,
        "contenders": {
            name: {"samples": s, "spread": {m: spread(v) for m, v in s.items()}}
            for name, s in samples.items()
        },
        "targets": [],
    }
    assert "paired 0.9000–0.9000×" in (readme_table({"head_to_head": data}) or "")


def test_a_verdict_is_decisive_only_when_its_interval_agrees_with_it() -> None:
    # the median ratio meets the target, yet most rounds (and the interval of
    # the same-round ratios) say the opposite: not decisive
    target = Target("cpu_ms_per_1k_events", "twinstream sse", "websockets", 1.0, True)
    reference = [float(b) for b in range(1, 12)]
    ratios = [0.98 if n in (1, 2, 6) else 1.05 for n in range(1, 12)]
    samples: dict[str, dict[str, list[float | None]]] = {
        "twinstream sse": {"cpu_ms_per_1k_events": [r * b for r, b in zip(ratios, reference)]},
        "websockets": {"cpu_ms_per_1k_events": list(reference)},
    }
    (verdict,) = judge(samples, (target,))
    low, high = verdict["paired_interval"]
    assert verdict["met"] is True and 1.0 < low < high
    assert verdict["decisive"] is False
    assert verdict_cell(verdict).endswith(", within noise)")


def test_two_servers_equal_within_one_percent_are_at_parity_whichever_median_is_ahead() -> None:
    """Both deliver every event offered: the medians differ by noise, a hair
    below here, and an interval within ±1 % of the limit meets "at or above"."""
    target = Target("delivered_events_per_s", "twinstream sse", "websockets", 1.0, False)
    mine: list[float | None] = [29_997.0, 30_001.0, 29_999.0, 29_996.0, 30_002.0]
    samples: dict[str, dict[str, list[float | None]]] = {
        "twinstream sse": {"delivered_events_per_s": list(mine)},
        "websockets": {
            "delivered_events_per_s": [30_000.0, 29_999.0, 30_001.0, 29_998.0, 30_000.0]
        },
    }
    (verdict,) = judge(samples, (target,))
    low, high = verdict["paired_interval"]
    assert verdict["median"] < verdict["reference_median"] and 0.99 < low < 1.0 < high < 1.01
    assert verdict["at_parity"] is True and verdict["met"] is True and verdict["decisive"] is True
    assert verdict_cell(verdict) == (
        "met (1.00×; 2 of 5 rounds; paired 0.9999–1.0001×, at parity: within ±1%)"
    )
    # the same spread around a ratio 2 % below is a miss, decisively
    (below,) = judge(
        {
            "twinstream sse": {"delivered_events_per_s": [0.98 * v for v in mine if v]},
            "websockets": samples["websockets"],
        },
        (target,),
    )
    assert below["at_parity"] is False and below["met"] is False and below["decisive"] is True
