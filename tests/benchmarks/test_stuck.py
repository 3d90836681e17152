"""benchmarks.stuck: its wire helpers with vectors, and the part in a tiny
configuration -- shape and sanity of the output, never timings or memory figures.

Servers are subprocesses on free loopback ports; the normal clients run in a
worker process, the stuck readers on raw sockets in the test's process.
"""

from __future__ import annotations

import json
import struct

from benchmarks.config import TINY
from benchmarks.servers import TWINSTREAM
from benchmarks.stuck import (
    PLANS,
    _start_server,
    parse_http_responses,
    parse_ws_frames,
    report_section,
    run_stuck,
    summary_rows,
    ws_frame,
)

# -- WebSocket frames ------------------------------------------------------------------


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked frame, as servers send them (RFC 6455 5.1)."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return struct.pack("!BB", first, len(payload)) + payload
    if len(payload) < 1 << 16:
        return struct.pack("!BBH", first, 126, len(payload)) + payload
    return struct.pack("!BBQ", first, 127, len(payload)) + payload


def test_ws_frames_small_medium_large_fragmented_and_close() -> None:
    medium, large = "m" * 300, "L" * 70_000
    data = (
        server_frame(0x1, b'{"a":1}')
        + server_frame(0x1, medium.encode())
        + server_frame(0x1, large.encode())
        + server_frame(0x1, b"frag", fin=False)
        + server_frame(0x9, b"ping")  # a control frame between fragments (5.4)
        + server_frame(0x0, b"mented")
        + server_frame(0x8, struct.pack("!H", 4008) + b"slow consumer")
        + b"after the close frame"
    )
    frames = parse_ws_frames(data)
    assert frames.messages == ['{"a":1}', medium, large, "fragmented"]
    assert (frames.close_code, frames.close_reason) == (4008, "slow consumer")


def test_ws_frames_cut_anywhere_keep_the_whole_ones() -> None:
    whole = [json.dumps({"seq": i, "content": "x" * (i * 40)}) for i in range(6)]
    data = b"".join(server_frame(0x1, m.encode()) for m in whole)
    for cut in range(len(data) + 1):
        frames = parse_ws_frames(data[:cut])
        assert frames.messages == whole[: len(frames.messages)]
        assert frames.close_code is None
        assert frames.trailing == cut - len(
            b"".join(server_frame(0x1, m.encode()) for m in frames.messages)
        )


def test_client_frames_are_masked_and_round_trip() -> None:
    for size in (0, 5, 125, 126, 65535, 65536):
        payload = (b"twinstream" * (size // 10 + 1))[:size]
        frame = ws_frame(0x1, payload, b"\x01\x02\x03\x04")
        assert frame[0] == 0x81 and frame[1] & 0x80  # final text frame, masked
        assert payload not in frame or size == 0  # the payload is not sent in the clear
        assert parse_ws_frames(frame).messages == [payload.decode()]
    assert ws_frame(0xA, b"", b"\x00\x00\x00\x00") == b"\x8a\x80\x00\x00\x00\x00"


# -- pipelined HTTP responses -----------------------------------------------------------


def chunked(status: int, *chunks: bytes, end: bool = True) -> bytes:
    head = f"HTTP/1.1 {status} OK\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    body = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks)
    return head + body + (b"0\r\n\r\n" if end else b"")


def test_pipelined_responses_split_and_the_last_cut_short() -> None:
    first = chunked(200, b"id: s:1\ndata: a\n\n", b"id: s:2\ndata: b\n\n")
    second = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    third = chunked(200, b"id: s:1\ndata: a\n\n", b"id: s:2\nda", end=False)
    responses = parse_http_responses(first + second + third)
    assert [(r.status, r.complete) for r in responses] == [(200, True), (204, True), (200, False)]
    assert responses[0].body == b"id: s:1\ndata: a\n\nid: s:2\ndata: b\n\n"
    assert responses[2].body == b"id: s:1\ndata: a\n\nid: s:2\nda"


def test_pipelined_responses_parse_at_every_cut() -> None:
    data = chunked(200, b"data: one\n\n", b"data: two\n\n") * 3
    for cut in range(len(data) + 1):
        responses = parse_http_responses(data[:cut])
        assert all(r.complete for r in responses[:-1])
        assert all(r.status == 200 for r in responses)
        for response in responses:
            assert b"data: one\n\ndata: two\n\n".startswith(response.body)


# -- the part -------------------------------------------------------------------------


def test_a_server_without_the_flags_is_detected() -> None:
    server, message = _start_server(TWINSTREAM.command(0, 0) + ["--no-such-flag", "1"])
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
