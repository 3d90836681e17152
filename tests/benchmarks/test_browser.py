"""The browser part in Debian's headless Chromium, tiny: shape and what must hold
(nothing lost or repeated across a cut; the seventh EventSource waits for a free
connection, the seventh WebSocket stream does not) -- no speed assertions."""

from __future__ import annotations

import pytest

from benchmarks.browser import browser_unavailable, run_browser
from benchmarks.config import TINY

CONFIG = TINY.replace(workers=1)


def test_chromium_and_playwright_are_here() -> None:
    # scripts/test.sh installs Debian's chromium; the part must not be skipped in CI
    assert browser_unavailable() is None


def test_browser_part_measures_reconnect_limit_and_cpu() -> None:
    results = run_browser(CONFIG, ("reconnect", "limit", "cpu"), progress=False)
    assert results["available"] is True and "Chromium" in results["chromium"]
    assert results["retry_ms"] == 1000  # the server's default `retry:` hint

    for transport in ("sse", "ws"):
        cut = results["reconnect"][transport]
        assert cut["outcomes"] == ["done"]
        assert cut["cuts"] == cut["resumed"] == CONFIG.browser_cuts
        assert cut["lost"] == cut["duplicated"] == cut["text_mismatches"] == 0
        assert cut["cut_to_next_event_ms"]["n"] == CONFIG.browser_cuts
    # EventSource honours the server's retry: it cannot be back before it elapsed
    assert results["reconnect"]["sse"]["cut_to_next_event_ms"]["p50"] >= 1000

    sse, ws = results["limit"]["sse"], results["limit"]["ws"]
    for limit in (sse, ws):
        assert limit["streams"] == limit["started"] == limit["complete"] == 7
    # six connections per origin: the seventh EventSource starts only once a stream ended
    assert sse["seventh_start_ms"] >= sse["first_done_ms"]
    # one WebSocket carries all seven: the seventh starts before any stream ends
    assert ws["seventh_start_ms"] < ws["first_done_ms"]

    for transport in ("sse", "ws"):
        cpu = results["cpu"][transport]
        assert cpu["events"] >= CONFIG.browser_cpu_events
        assert cpu["cpu_ms_per_1k_events"] is not None and cpu["cpu_ms_per_1k_events"] >= 0
        assert "renderer" in cpu["cpu_ms_per_1k_events_by_process"]


def test_without_a_usable_chromium_the_part_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.browser as browser

    monkeypatch.setattr(browser, "CHROMIUM_PATH", "/nonexistent/chromium")
    missing = run_browser(CONFIG, ("reconnect",), progress=False)
    assert missing["available"] is False and "no Chromium at /nonexistent" in missing["reason"]
    assert "reconnect" not in missing

    monkeypatch.setattr(browser, "CHROMIUM_PATH", "/bin/false")  # exists, is no browser
    broken = run_browser(CONFIG, ("reconnect",), progress=False)
    assert broken["available"] is False and "Chromium did not start" in broken["reason"]
