"""The benchmark suite's parts, each in a tiny configuration: shape and sanity of
their output (no timing assertions -- timings on a shared machine are noise).

Every server is a subprocess on a free loopback port, stopped by the part that
started it; the client load runs in one worker process.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import main
from benchmarks.clients import SSEParser, StreamRecord, expected_text, prompts_with_tokens
from benchmarks.config import TINY
from benchmarks.latency import run_latency
from benchmarks.proxy import CountingProxy
from benchmarks.reconnect import plan_cuts, run_reconnect
from benchmarks.report.summary import summary_table
from benchmarks.servers import PEER_SPECS, TWINSTREAM, ServerProcess, with_loop
from benchmarks.stats import paired_ratio_interval, percentile, summarize
from benchmarks.throughput import model_lag, run_throughput

CONFIG = TINY.replace(workers=1)
STAT_KEYS = {"n", "p50", "p90", "p99", "max", "mean"}


def assert_stats(stats: dict[str, Any], n: int | None = None) -> None:
    assert set(stats) == STAT_KEYS
    assert stats["n"] > 0
    if n is not None:
        assert stats["n"] == n
    assert stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]


# -- pure helpers ----------------------------------------------------------------------


def test_percentiles_and_summary() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    summary = summarize([0.001, 0.002, 0.003], scale=1000)
    assert summary["n"] == 3 and summary["p50"] == 2.0 and summary["max"] == 3.0
    assert summarize([])["p50"] is None


def test_paired_ratio_interval_is_a_t_interval_on_the_log_ratios() -> None:
    # equal ratios: no spread, so the interval is the ratio itself
    assert paired_ratio_interval([(2.0, 1.0), (4.0, 2.0), (6.0, 3.0)]) == pytest.approx(
        (2.0, 2.0, 2.0)
    )
    # ratios 1 and 4: logs 0 and ln 4, mean ln 2 (geometric mean 2), standard error
    # ln 2; one degree of freedom, t = 12.706
    mean, low, high = paired_ratio_interval([(1.0, 1.0), (8.0, 2.0)]) or (0, 0, 0)
    assert mean == pytest.approx(2.0)
    assert low == pytest.approx(2.0 * 2.0**-12.706)
    assert high == pytest.approx(2.0 * 2.0**12.706)
    # eight rounds (seven degrees of freedom, t = 2.365), ratios e^-1 and e^1 alike
    logs = [-1.0, 1.0] * 4
    pairs = [(math.exp(x), 1.0) for x in logs]
    half = 2.365 * statistics.stdev(logs) / math.sqrt(8)
    assert paired_ratio_interval(pairs) == pytest.approx((1.0, math.exp(-half), math.exp(half)))
    # beyond the table (30 degrees of freedom), t is 1.96 + 2.4 / df
    logs = [-1.0, 1.0] * 20
    half = (1.96 + 2.4 / 39) * statistics.stdev(logs) / math.sqrt(40)
    pairs = [(math.exp(x), 1.0) for x in logs]
    assert paired_ratio_interval(pairs) == pytest.approx((1.0, math.exp(-half), math.exp(half)))
    # a round that delivered nothing has no ratio: no interval rather than one
    # without it; fewer than two pairs: none either
    assert paired_ratio_interval([(0.0, 1.0), (2.0, 1.0), (3.0, 1.0)]) is None
    assert paired_ratio_interval([(2.0, 1.0)]) is None
    assert paired_ratio_interval([]) is None


def test_sse_parser_handles_split_crlf_and_partial_events() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: s:0\r") == []
    assert parser.feed(b'\ndata: {"a":') == []
    assert parser.feed(b"1}\r\n\r\n: comment\n\ndata: x\n\n") == [
        ("s:0", '{"a":1}'),
        ("s:0", "x"),
    ]


def test_prompts_are_long_enough_and_distinct() -> None:
    prompts = prompts_with_tokens(5, 150)
    assert len(set(prompts)) == 5
    assert all(len(expected_text(p, 150)) > 0 for p in prompts)


def test_cut_plan_alternates_sides_inside_the_stream() -> None:
    plan = plan_cuts(random.Random(1), max_tokens=30, cuts=6, first_side=1)
    assert [c.side for c in plan] == ["client", "server", "network"] * 2
    seqs = [c.after_seq for c in plan]
    assert seqs == sorted(set(seqs)) and 1 <= seqs[0] and seqs[-1] < 30


def test_counting_proxy_counts_and_cuts() -> None:
    async def scenario() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(1024):
                writer.write(data * 2)
                await writer.drain()
            writer.close()

        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = upstream.sockets[0].getsockname()[1]
        try:
            async with CountingProxy("127.0.0.1", port) as proxy:
                reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
                writer.write(b"hello")
                assert await reader.readexactly(10) == b"hellohello"
                assert proxy.bytes_up == 5 and proxy.bytes_down == 10
                local_port = writer.get_extra_info("sockname")[1]
                assert proxy.cut(local_port)
                with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                    await reader.readexactly(1)
                writer.close()
        finally:
            upstream.close()
            await upstream.wait_closed()

    asyncio.run(scenario())


def test_model_lag_measures_tokens_against_the_schedule() -> None:
    record = StreamRecord("sse", "p", 3, cold=True)
    start = 1000.0
    # first token 0.25 s after start, then one every 0.1 s; the last one is 0.05 s late
    for kind, t in (
        ("start", start),
        ("delta", start + 0.25),
        ("delta", start + 0.35),
        ("delta", start + 0.50),
        ("done", start + 0.5),
    ):
        record.add({"type": kind, "seq": len(record.kinds), "t": t}, t + 0.001)
    config = TINY.replace(tokens_per_second=10.0, first_token_latency=0.25)
    assert [round(lag, 6) for lag in model_lag([record], config)] == [0.0, 0.0, 0.05]
    assert model_lag([record], TINY) == []  # unthrottled: no schedule to lag behind
    assert [round(d, 6) for d in record.delivery_delays()] == [0.001] * 5
    assert [round(g, 6) for g in record.inter_token_gaps()] == [0.1, 0.15]


# -- the peer servers speak the contract --------------------------------------------


PEER_CASES = [(spec, transport) for spec in PEER_SPECS for transport in spec.transports] + [
    (with_loop(spec, "uvloop"), spec.transports[0]) for spec in PEER_SPECS if not spec.program
]


@pytest.mark.parametrize(
    "spec, transport", PEER_CASES, ids=[f"{s.name}-{t}" for s, t in PEER_CASES]
)
def test_peer_servers_stream_the_synthetic_model(spec: Any, transport: str) -> None:
    """Every peer (the Node one included, each of its transports; the Python ones on
    uvloop too) streams exactly the synthetic model's tokens, numbered and stamped."""
    from benchmarks.clients import Endpoint, sse_completion, ws_completion

    prompt = prompts_with_tokens(1, 20, "peer")[0]

    async def one(url: str) -> Any:
        endpoint = Endpoint(url)
        if transport == "sse":
            record, connection = await sse_completion(endpoint, prompt, 20)
            await connection.close()
        else:
            record, websocket = await ws_completion(endpoint, prompt, 20)
            assert websocket is not None
            await websocket.close()
        return record

    with ServerProcess(spec.command(0, 0)) as server:
        record = asyncio.run(one(server.url))
        if spec.loop == "uvloop":
            maps = Path(f"/proc/{server.pid}/maps").read_text(encoding="utf-8")
            assert "uvloop/loop." in maps
    assert record.error is None
    assert record.kinds[0] == "start" and record.kinds[-1] == "done"
    assert record.seqs == list(range(len(record.seqs)))
    assert record.text == expected_text(prompt, 20)
    assert all(t > 0 for t in record.produced)


# -- the parts, tiny ----------------------------------------------------------------------


def test_latency_part() -> None:
    results = run_latency(CONFIG, (TWINSTREAM,), progress=False)
    data = results["twinstream"]["transports"]
    assert set(data) == {"sse", "ws"}
    for transport, measures in data.items():
        for mode in ("cold", "warm"):
            block = measures["single"][mode]
            assert block["completions"] == CONFIG.latency_samples
            assert block["complete"] == CONFIG.latency_samples and block["errors"] == 0
            assert_stats(block["ttft_ms"], CONFIG.latency_samples)
            assert_stats(block["time_to_start_ms"], CONFIG.latency_samples)
        assert_stats(measures["single"]["inter_token_gap_ms"])
        assert_stats(measures["single"]["delivery_delay_ms"])
        concurrent = measures["concurrent"]
        assert concurrent["streams"] == CONFIG.latency_concurrency
        assert concurrent["complete"] == CONFIG.latency_concurrency, concurrent["error_examples"]
        # start + max_tokens deltas + done, per stream
        assert concurrent["events"] == CONFIG.latency_concurrency * (
            CONFIG.concurrent_max_tokens + 2
        )
        assert_stats(concurrent["delivery_delay_ms"], concurrent["events"])
        assert concurrent["client_cpu_percent"] >= 0
        cdf = measures["cdf_ms"]["ttft_cold"]
        assert cdf == sorted(cdf) and len(cdf) == CONFIG.latency_samples


def test_throughput_part() -> None:
    results = run_throughput(CONFIG, (TWINSTREAM,), progress=False)["twinstream"]
    for transport in ("sse", "ws"):
        levels = results["sweep"][transport]
        assert [level["streams"] for level in levels] == list(CONFIG.sweep)
        for level in levels:
            assert level["errors"] == 0, level["error_examples"]
            assert level["complete"] == level["completions"] == level["streams"]
            assert level["delta_events"] == level["expected_delta_events"]
            assert level["exact_text"] == level["streams"]
            assert level["offered_events_per_s"] is None  # unthrottled model
            assert level["delivered_events_per_s"] > 0
            assert level["server_idle_rss_mib"] > 0
            assert level["client_cpu_percent"] >= 0
        unthrottled = results["unthrottled"][transport]
        assert unthrottled["errors"] == 0 and unthrottled["completions"] >= 1
        assert unthrottled["events_per_s"] > 0
    for transport in ("sse", "ws"):
        held = results["open_connections"][transport]
        assert held["opened"] == held["connections"] == max(CONFIG.sweep)
        assert held["server_open_rss_mib"] > 0
    wire = results["wire_bytes"]
    assert set(wire) == {
        f"{variant}_{mode}"
        for variant in ("sse", "sse_gzip", "ws", "ws_deflate")
        for mode in ("cold", "warm")
    }
    for name, variant in wire.items():
        assert variant["errors"] == 0
        assert variant["connections"] == (1 if name.endswith("warm") else CONFIG.wire_streams)
        # every token's content at least crosses the wire (uncompressed variants)
        if not variant["compression"]:
            assert variant["bytes_down_per_token"] > 1
    assert wire["ws_deflate_cold"]["deflate_negotiated"] is True
    assert wire["ws_cold"]["deflate_negotiated"] is False
    assert wire["ws_deflate_cold"]["bytes_down"] < wire["ws_cold"]["bytes_down"]
    assert wire["sse_gzip_cold"]["deflate_negotiated"] is True  # gzip was used
    assert wire["sse_cold"]["deflate_negotiated"] is False
    assert wire["sse_gzip_cold"]["bytes_down"] < wire["sse_cold"]["bytes_down"]


def test_reconnect_part_loses_and_duplicates_nothing() -> None:
    # paced so cuts land while the stream is still being generated
    config = CONFIG.replace(tokens_per_second=200.0, reconnect_streams=2, reconnect_cuts=6)
    results = run_reconnect(config, progress=False)
    for transport in ("sse", "ws"):
        data = results["transports"][transport]
        assert data["errors"] == 0, data["error_examples"]
        assert data["finished"] == data["streams"] == 2
        assert data["lost"] == 0
        assert data["duplicated"] == 0
        assert data["text_mismatches"] == 0
        assert data["all"]["cuts"] == 2 * 6  # cuts are planned by seq, so all happen
        by_side = data["by_side"]
        assert set(by_side) == {"network", "client", "server"}
        assert sum(side["cuts"] for side in by_side.values()) == data["all"]["cuts"]
        # a client-side cut always needs a new connection
        assert by_side["client"]["resumed"] == by_side["client"]["cuts"] > 0
        assert data["connections"] >= data["streams"] + by_side["client"]["cuts"]
        assert data["events_received"] >= data["events_expected"]


def test_cli_runs_all_parts_and_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["--preset", "tiny", "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["parts"] == [
        "latency",
        "throughput",
        "reconnect",
        "peers",
        "network",
        "browser",
        "churn",
        "protocols",
        "capacity",
        "http2",
        "conversation",
    ]
    assert set(results["latency"]) == {"twinstream", "sse-starlette", "websockets", "node"}
    assert set(results["throughput"]) == {"twinstream", "sse-starlette", "websockets", "node"}
    assert results["reconnect"]["sides"] == ["network", "client", "server"]
    assert results["reconnect"]["transports"]["sse"]["lost"] == 0
    assert results["reconnect"]["transports"]["ws"]["duplicated"] == 0
    # connections and stuck run inside throughput/peers with the full preset only
    # (tests/test_benchmarks_connections.py and _stuck.py run them tiny, alone)
    assert "connections" not in results and "stuck" not in results
    assert set(results["network"]["profiles"]) == set(CONFIG.network_profiles)
    assert results["browser"]["available"] is True
    assert results["churn"]["transports"]["sse"]["delivery_percent"] == 100
    # issue 25's parts (each has its own tiny test of what it measures)
    assert set(results["protocols"]["views"]) >= {"twinstream sse", "twinstream ws", "chat chunks"}
    assert "node ws" in results["capacity"]["contenders"]
    assert results["http2"]["available"] is True
    assert set(results["conversation"]["profiles"]) == set(CONFIG.conversation_profiles)
    report = (out / "report.md").read_text()
    # the report opens with the verdict (after a busy-machine banner, if any)
    assert report.index("## What to choose") < report.index("## Summary")
    assert report.split("## What to choose", 1)[1].lstrip().startswith("- **")
    assert "| Metric | twinstream SSE | twinstream WebSocket |" in report
    for section in (
        "## Network profiles",
        "## In a real browser",
        "## Churn",
        "## What each protocol view costs",
        "## Capacity: streams per core",
        "## HTTP/2 in front",
        "## A conversation",
    ):
        assert section in report
    assert "| node (SSE) | node (WS) |" in report
    for plot in ("latency_cdf.png", "throughput.png", "network_delay_cdf.png", "capacity_knee.png"):
        assert (out / plot).stat().st_size > 1000
        assert f"]({plot})" in report
    # the report can be rebuilt from results.json alone
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").exists()
    assert summary_table(results).count("\n") >= 5


def test_cli_pools_the_head_to_head_rounds_of_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds = {"cpu_ms_per_1k_events": [25.0, 27.0]}
    data = {
        "rounds": 2,
        "streams": 1000,
        "latency_streams": 500,
        "contenders": {
            "twinstream sse": {"samples": rounds},
            "websockets": {"samples": {"cpu_ms_per_1k_events": [26.0, 30.0]}},
        },
    }
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"head_to_head": data}))
    assert main(["pool", str(tmp_path / "one"), str(tmp_path / "two")]) == 0
    out = capsys.readouterr().out
    assert "over 4 head-to-head rounds from 2 runs" in out
    assert "| 26.0 (25.0–27.0) | ≤ websockets: 28.0 | met (0.93×; 4 of 4 rounds" in out
    with pytest.raises(SystemExit):  # a folder without results.json: says which
        main(["pool", str(tmp_path / "one"), str(tmp_path / "missing")])
    assert "missing/results.json: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pool"])


def test_cli_refuses_bad_head_to_head_loads_and_rounds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, message in (
        (["headtohead", "--loads", "throughput,bogus"], "unknown head-to-head load(s) bogus"),
        (["headtohead", "--loads", ","], "unknown head-to-head load(s) ','"),
        (["headtohead", "--rounds", "1"], "--rounds must be at least 2, not 1"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert message in error, argv
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "--loads" in help_text and "--rounds" in help_text
    assert "headtohead --loads throughput --rounds 40" in help_text


def test_cli_help_and_bad_part(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--quick" in help_text and "connections" in help_text and "stuck" in help_text
    with pytest.raises(SystemExit):
        main(["nonsense"])
    with pytest.raises(SystemExit):  # they start servers of their own
        main(["--url", "http://127.0.0.1:9/", "stuck"])


def test_loops_and_store_options_reach_the_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks.suite import configured

    config = configured("quick", loops=["asyncio", "uvloop"], store="redis")
    assert config.head_to_head_loops == config.capacity_loops == ("asyncio", "uvloop")
    assert config.store == "redis"
    assert configured("full").head_to_head_loops == ("asyncio", "uvloop")
    assert configured("quick").store is None
    with pytest.raises(SystemExit):
        main(["capacity", "--loops", "trio"])
    assert "unknown event loop(s) trio; choose from asyncio, uvloop" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["capacity", "--store", "memcached"])


def test_every_preset_asks_the_synthetic_model_for_no_more_tokens_than_it_writes() -> None:
    # the full preset's capacity asked for 300 and the part failed at its first level
    from benchmarks.clients import MOST_SYNTHETIC_TOKENS
    from benchmarks.config import PRESETS

    for preset in PRESETS.values():
        for name, value in preset.as_dict().items():
            if name.endswith("_max_tokens"):
                assert value <= MOST_SYNTHETIC_TOKENS, (preset.name, name, value)
    with pytest.raises(ValueError, match="at most 220 tokens"):
        prompts_with_tokens(1, MOST_SYNTHETIC_TOKENS + 1)


def test_a_run_that_stopped_is_resumed_with_the_parts_it_lacks(tmp_path: Path) -> None:
    from benchmarks.suite import run_suite

    run_suite(["reconnect"], preset="tiny", out=tmp_path, progress=False)
    stopped = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    stopped["meta"]["config"]["capacity_max_tokens"] = 999  # what the stopped run was given
    (tmp_path / "results.json").write_text(json.dumps(stopped), encoding="utf-8")
    results, out = run_suite(
        ["reconnect", "latency"], preset="tiny", out=tmp_path, progress=False, resume=True
    )
    assert out == tmp_path
    assert results["reconnect"] == stopped["reconnect"]  # not run again
    assert list(results["meta"]["part_seconds"]) == ["reconnect", "latency"]
    assert results["latency"]["twinstream"]
    (resumption,) = results["meta"]["resumptions"]
    assert resumption["parts"] == ["latency"]
    assert resumption["changed_settings"] == {
        "capacity_max_tokens": {"was": 999, "now": TINY.capacity_max_tokens}
    }
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["meta"]["resumptions"] == results["meta"]["resumptions"]
    assert (tmp_path / "report.md").is_file()
    with pytest.raises(ValueError, match="resume it with --preset tiny"):
        run_suite(["latency"], preset="quick", out=tmp_path, progress=False, resume=True)
    with pytest.raises(ValueError, match="nothing to resume"):
        run_suite(["latency"], preset="tiny", out=tmp_path / "none", progress=False, resume=True)
