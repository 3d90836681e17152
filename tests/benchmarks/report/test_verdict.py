""" "What to choose" and the busy banner, from hand-made results (vectors): each statement
quotes the run's figures, picks its side from them, and is left out without them."""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.report.sections import (
    browser_details,
    churn_details,
    network_details,
    network_summary,
)
from benchmarks.report.verdict import busy_banner, choose, ratio_notes, tainted_figures


def variant(start: float, ttft: float, keeps_up: bool, link_per_token: float) -> dict[str, Any]:
    stats = {"n": 4, "p50": start, "p90": start, "p99": start, "max": start, "mean": start}
    return {
        "errors": 0,
        "compression_used": [],
        "cold": {
            "time_to_start_ms": stats,
            "ttft_ms": {**stats, "p50": ttft},
            "delivery_delay_ms": {**stats, "p50": 80.0, "p99": 200.0},
        },
        "keep_up": {
            "streams": 6,
            "keeps_up": keeps_up,
            "delivered_share": 1.0 if keeps_up else 0.7,
            "delivery_delay_ms": stats,
            "stalls": 2,
        },
        "bytes": {
            "proxy_down_per_token": link_per_token - 60,
            "link_down_per_token": link_per_token,
            "link_drops": 0,
        },
    }


RESULTS: dict[str, Any] = {
    "meta": {"cpus": 2, "load_average": [0.5, 0.5, 0.5]},
    "network": {
        "shaping": "tbf in network namespaces",
        "emulation": "proxy",
        "tokens_per_second": 30.0,
        "profiles": {
            "3g": {
                "rtt_ms": 150.0,
                "down_bps": 1_500_000,
                "shaped": True,
                "shared_streams": 6,
                "description": "150 ms RTT",
                "variants": {
                    "twinstream sse": variant(320.0, 570.0, True, 200.0),
                    "twinstream ws": variant(470.0, 720.0, True, 180.0),
                },
            },
            "poor": {
                "rtt_ms": 100.0,  # not the longest RTT: 3g must be the one quoted
                "down_bps": 200_000,
                "shaped": True,
                "shared_streams": 6,
                "description": "400 ms RTT",
                "variants": {
                    "twinstream sse": variant(900.0, 1100.0, False, 198.0),
                    "twinstream ws": variant(1300.0, 1600.0, False, 180.0),
                    "twinstream ws+deflate": variant(1300.0, 1600.0, True, 104.0),
                },
            },
        },
    },
    "browser": {
        "available": True,
        "retry_ms": 1000,
        "chromium": "Chromium 1",
        "reconnect": {
            t: {
                "cuts": 3,
                "resumed": 3,
                "outcomes": ["done"],
                "cut_to_next_event_ms": {"p50": v, "max": v},
                "cut_to_noticed_ms": {"p50": 5.0},
                "lost": 0,
                "duplicated": 0,
                "text_mismatches": 0,
            }
            for t, v in (("sse", 1015.0), ("ws", 268.0))
        },
        "limit": {
            "sse": {"seventh_start_ms": 1255.0, "seventh_waited_ms": 1190.0,
                    "time_to_start_ms": [40.0] * 6 + [1255.0], "first_done_ms": 1247.0},
            "ws": {"seventh_start_ms": 12.0, "seventh_waited_ms": 0.1,
                   "time_to_start_ms": [12.0] * 7, "first_done_ms": 1226.0},
        },
    },
    "churn": {
        "seconds": 150.0,
        "clients_per_transport": 100,
        "max_tokens": 120,
        "interval_s": 3.0,
        "fraction": 0.2,
        "offline_s": 2.0,
        "machine_cpu_percent": 95.0,
        "transports": {
            t: {
                "streams": 300,
                "cuts": 1000,
                "connections": 1300,
                "events_expected": 36000,
                "delivery_percent": 100.0,
                "duplicated": 0,
                "exact_text": 300,
                "replays": 900,
                "replay_delay_ms": {"p50": 3.0, "p99": 9.0},
                "errors": 0,
            }
            for t in ("sse", "ws")
        },
        "rolling_restart": {"run": False, "reason": "needs a shared store"},
    },
}  # fmt: skip


def test_each_statement_quotes_its_figures_and_when_it_flips() -> None:
    statements = choose(RESULTS)
    cold, capped, limit, reconnect, churn = statements
    assert cold.startswith("**Streams that start on a new connection over a slow link: SSE.**")
    assert "`3g`" in cold and "320 ms" in cold and "470 ms" in cold and "150 ms" in cold
    assert "150 ms, about 1.0 round trips" in cold and "flips" in cold
    assert capped.startswith("**A capped link: compress.**") and "`poor`" in capped
    assert "Kept up: ws+deflate" in capped and "Fell behind: sse (70 %), ws (70 %)" in capped
    assert "SSE with gzip was not available" in capped
    assert limit.startswith("**More than six streams at once in one browser: WebSocket.**")
    assert "1,255 ms" in limit and "1,190 ms" in limit
    assert "1,015 ms" in reconnect and "268 ms" in reconnect and "retry: 1000" in reconnect
    assert churn.startswith("**Exact resume holds under churn") and "100.00 %" in churn
    assert "the machine was 95 % busy" in churn
    assert all("flips" in s for s in (cold, capped, limit, reconnect))


def test_the_side_follows_the_figures() -> None:
    swapped = copy.deepcopy(RESULTS)
    three_g = swapped["network"]["profiles"]["3g"]["variants"]
    three_g["twinstream sse"], three_g["twinstream ws"] = (
        three_g["twinstream ws"],
        three_g["twinstream sse"],
    )
    swapped["browser"]["limit"]["sse"]["seventh_waited_ms"] = 3.0
    cold, _, limit, *_ = choose(swapped)
    assert "slow link: WebSocket.**" in cold
    assert limit.startswith("**Seven streams at once in one browser: no difference seen here.**")
    swapped["churn"]["transports"]["ws"]["duplicated"] = 2
    assert "lost or repeated" in choose(swapped)[-1]


def test_cpu_statement_says_where_each_transport_is_cheaper() -> None:
    results = {
        "throughput": {
            "twinstream": {
                "sweep": {
                    "sse": [{"streams": 1000, "server_cpu_ms_per_1k_events": 37.8}],
                    "ws": [{"streams": 1000, "server_cpu_ms_per_1k_events": 40.5}],
                }
            }
        },
        "browser": {
            "cpu": {"sse": {"cpu_ms_per_1k_events": 1300.0}, "ws": {"cpu_ms_per_1k_events": 894.0}}
        },
    }
    (cpu,) = choose(results)  # no memory figures: no memory statement
    assert cpu.startswith(
        "**CPU per event: within 25 % on the server; WebSocket cheaper in the browser.**"
    )
    assert "37.8 ms" in cpu and "1,300 ms" in cpu and "894 ms" in cpu


def test_statements_without_their_figures_are_left_out() -> None:
    assert choose({}) == []
    only_browser = {"browser": RESULTS["browser"]}
    assert len(choose(only_browser)) == 2


def test_busy_banner_names_the_tainted_figures() -> None:
    assert tainted_figures(RESULTS) == [("churn (replay delay)", 95.0)]
    banner = busy_banner(RESULTS)
    assert banner is not None and "churn (replay delay) (95 %)" in banner
    loaded = copy.deepcopy(RESULTS)
    loaded["latency"] = {
        server: {"transports": {"sse": {"concurrent": {"streams": 100, "machine_cpu_percent": b}}}}
        for server, b in (("twinstream", 99.0), ("sse-starlette", 100.0))
    }
    assert "latency at 100 streams (2 measures, 99–100 %)" in (busy_banner(loaded) or "")
    loaded["throughput"] = {
        "twinstream": {"sweep": {"sse": [{"streams": 1000, "machine_cpu_percent": 100.0}]}}
    }
    assert "throughput at 1,000 streams (100 %)" in (busy_banner(loaded) or "")
    calm = copy.deepcopy(RESULTS)
    calm["churn"]["machine_cpu_percent"] = 40.0
    assert busy_banner(calm) is None
    calm["meta"]["load_average"] = [3.0, 1.0, 1.0]  # other work before the run began
    assert "Load average 3.0 on 2 cores" in (busy_banner(calm) or "")


def test_sections_render_every_part() -> None:
    summary = network_summary(RESULTS) or ""
    assert summary.count("\n") == 3  # header, rule, two profiles
    assert "| `poor` |" in summary and "no / n/a / no / yes" in summary
    assert "ws+deflate" in network_details(RESULTS)
    details = browser_details(RESULTS)
    assert "1,255" in details and "Chromium 1" in details
    assert "not run — needs a shared store" in churn_details(RESULTS)
    assert browser_details({"browser": {"available": False, "reason": "no Chromium"}}) == (
        "_Not measured: no Chromium._"
    )


def test_largest_ratios_are_named_and_explained() -> None:
    assert ratio_notes(RESULTS) == (
        "Largest WebSocket / SSE ratios in the table: "
        "Chromium: 7 streams from one page, the 7th's first event (ms): 0.01× (a real "
        "difference; the detail tables show where it comes from); "
        "Chromium: server cut → next token (ms, p50; SSE waits `retry: 1000`): 0.26× (a real "
        "difference; the detail tables show where it comes from)."
    )
    tiny = {
        "latency": {
            "twinstream": {
                "transports": {
                    "sse": {"single": {"warm": {"time_to_start_ms": {"p50": 5.6}}}},
                    "ws": {"single": {"warm": {"time_to_start_ms": {"p50": 0.8}}}},
                }
            }
        }
    }
    assert "too small for a reader to notice" in (ratio_notes(tiny) or "")
    assert ratio_notes({}) is None
