"""benchmarks.http2, tiny: real nginx (TLS, HTTP/1.1 and HTTP/2) in front of a real
twinstream, real headless Chromium; the shape of its results and what must hold (six
connections and a waiting seventh EventSource on HTTP/1.1, one connection and no wait on
HTTP/2, a WebSocket on a connection of its own), never speeds."""

from __future__ import annotations

from benchmarks.config import TINY
from benchmarks.http2 import MAX_CONCURRENT_STREAMS, nginx_binary, run_http2
from benchmarks.report.http2 import http2_choice, http2_flip, http2_section, http2_table
from benchmarks.report.verdict import choose


def test_nginx_and_openssl_are_here() -> None:
    assert nginx_binary() is not None  # scripts/test.sh installs Debian's nginx


def test_http2_tiny_against_real_nginx_and_chromium() -> None:
    data = run_http2(TINY, progress=False)
    assert data["available"] is True, data.get("reason")
    assert data["counts"] == [7] and data["max_concurrent_streams"] == MAX_CONCURRENT_STREAMS
    http1, http2 = data["versions"]["http1"], data["versions"]["http2"]
    assert (http1["protocol"], http2["protocol"]) == ("http/1.1", "h2")
    for version in (http1, http2):
        for transport in ("sse", "ws"):
            entry = version["counts"]["7"][transport]
            assert entry["page_status"] == 200
            assert entry["streams"] == entry["started"] == entry["complete"] == 7, transport
            assert len(entry["first_event_ms"]) == 7
            assert entry["last_first_event_ms"] == max(entry["first_event_ms"])
    sse1, sse2 = http1["counts"]["7"]["sse"], http2["counts"]["7"]["sse"]
    # six connections per origin on HTTP/1.1 (a seventh only when Chromium dropped one
    # whose EventSource closed, instead of reusing it): the seventh waited for an end
    assert sse1["connections"] in (6, 7) and sse1["request_protocols"] == ["HTTP/1.1"]
    assert sse1["last_first_event_ms"] >= sse1["first_done_ms"]
    # one HTTP/2 connection carries all seven: none waits for another to end
    assert sse2["connections"] == 1 and sse2["request_protocols"] == ["HTTP/2.0"]
    assert sse2["last_first_event_ms"] < sse2["first_done_ms"]
    for version in (http1, http2):
        ws = version["counts"]["7"]["ws"]
        # a WebSocket takes its own HTTP/1.1 connection, whatever the page came over
        assert ws["connections"] == 1 and ws["request_protocols"] == ["HTTP/1.1"]
        assert ws["last_first_event_ms"] < ws["first_done_ms"]

    results = {"http2": data}
    table = http2_table(results)
    assert table is not None and len(table.splitlines()) == 2 + 2
    assert http2_section(results)[0].startswith("## HTTP/2 in front")
    flip = http2_flip(results)
    assert flip is not None and "7 `EventSource`s all had their first event within" in flip
    line = http2_choice(results)
    assert line is not None and line.startswith("**Many streams from one page")
    assert f"It flips past {MAX_CONCURRENT_STREAMS} concurrent streams per origin" in line
    assert line in choose(results)


def test_without_nginx_or_chromium_the_section_says_why() -> None:
    missing = {"http2": {"available": False, "reason": "nginx is not installed"}}
    assert http2_table(missing) is None and http2_flip(missing) is None
    assert http2_section(missing) == [
        "## HTTP/2 in front: many streams from one page\n\n_not run_ (nginx is not installed)"
    ]
