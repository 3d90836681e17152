"""benchmarks.stuck: its /proc probe with vectors, and the part in a tiny
configuration -- shape and sanity of the output, never timings or memory figures
(its wire codec's vectors are in test_rawwire.py).

Servers are subprocesses on free loopback ports; the normal clients run in a
worker process, the stuck readers on raw sockets in the test's process.
"""

from __future__ import annotations

from benchmarks.config import TINY
from benchmarks.servers import TWINSTREAM
from benchmarks.stuck import (
    PLANS,
    report_section,
    run_stuck,
    start_server,
    summary_rows,
)
from benchmarks.stuck.probes import tx_queue_in

# -- the server's side of a connection (/proc/net/tcp) ---------------------------------

TCP_ROWS = [
    # sl local (8080)  remote (50000)  st tx_queue:rx_queue ...
    "   0: 0100007F:1F90 0100007F:C350 01 00000400:00000000 00:00000000 00000000  1000 0 1",
    "   1: 0100007F:C350 0100007F:1F90 01 00000000:00000010 00:00000000 00000000  1000 0 2",
    "   2: 0100007F:1F90 0100007F:C351 01 0001A000:00000000 00:00000000 00000000  1000 0 3",
]


def test_the_kernel_queue_of_the_servers_side_is_read_from_its_row() -> None:
    assert tx_queue_in(TCP_ROWS, 8080, 50000) == 0x400
    assert tx_queue_in(TCP_ROWS, 8080, 50001) == 0x1A000
    assert tx_queue_in(TCP_ROWS, 50000, 8080) == 0  # the client's side: nothing unsent
    assert tx_queue_in(TCP_ROWS, 8080, 50002) is None  # gone
    assert tx_queue_in([], 8080, 50000) is None


# -- the part -------------------------------------------------------------------------


def test_a_server_without_the_flags_is_detected() -> None:
    server, message = start_server(TWINSTREAM.command(0, 0) + ["--no-such-flag", "1"])
    assert server is None
    assert message is not None and "--no-such-flag" in message


def test_stuck_part_tiny() -> None:
    plan = PLANS["tiny"]
    results = run_stuck(TINY, TWINSTREAM, progress=False)
    assert results["server"] == "twinstream"
    assert set(results["transports"]) == {"sse", "ws"}
    for transport, data in results["transports"].items():
        assert data["supported"] is True, data["note"]
        assert data["flags"] == [
            "--max-pending-bytes",
            str(plan.max_pending_bytes),
            "--write-timeout",
            str(plan.write_timeout),
        ]
        for run in ("baseline", "with_stuck"):
            block = data[run]
            assert block["normal_clients"] == plan.normal_clients
            assert block["errors"] == 0, block["error_examples"]
            assert block["completions"] >= plan.normal_clients
            assert block["delivery_delay_ms"]["n"] > 0
            assert block["server_peak_rss_mib"] >= block["server_idle_rss_mib"] > 0
            assert 0 <= block["machine_cpu_percent"] <= 100
        assert data["baseline"]["stuck"] is None
        # the server keeps every stream of a run, so it counts the normal ones too
        assert data["baseline"]["server_streams"] == data["baseline"]["completions"]
        stuck = data["with_stuck"]["stuck"]
        assert stuck["error"] is None
        assert stuck["sent_messages"] > 0
        assert stuck["max_server_kernel_queue_kib"] > 0  # it never read
        assert data["stuck_streams"] >= 1
        assert data["stuck_streams_counted_by"] == "server (GET /healthz)"
        assert isinstance(data["extra_memory_mib"], float)
        assert data["p99_ratio"] > 0
        if stuck["disconnected"]:
            assert stuck["seconds_to_disconnect"] > 0
            assert stuck["resumed"] + stuck["complete_before_cut"] >= 1
            assert stuck["resume_failures"] == []
            assert data["events_lost"] == stuck["events_lost"] == 0
            assert stuck["events_duplicated"] == 0 and stuck["text_mismatches"] == 0
        else:
            assert stuck["how"] == "still connected at the end of the window"
    section = report_section({"stuck": results})
    assert section.startswith("## Stuck readers")
    rows = summary_rows({"stuck": results})
    assert [row[0].split(":")[0] for row in rows] == ["Stuck reader"] * 4
    assert all(row[3] is None and row[4] is None for row in rows)
