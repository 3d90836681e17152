"""The browser demo against a server that needs an API key, in real headless
Chromium (Debian's): the page asks for the key, trades it for a token, and
streams, stops and drops over both transports with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright
from support.browser_demo import DemoPage, expected_completion, launch_chromium

from server.app import Settings

KEY = "demo-key-5e8a"
PROMPT = "Compare the two transports"
LONG_PROMPT = "What is Last-Event-ID?"


@pytest.fixture
def live_settings() -> Settings:
    return Settings(
        tokens_per_second=40,
        first_token_latency=0,
        ws_ping_interval=0,
        api_key=KEY,
        debug_drop=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def demo(browser: Browser, live_server) -> Iterator[DemoPage]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = DemoPage(context.new_page(), live_server.url)
        yield page
        assert page.errors == [], "the page raised JavaScript errors"
    finally:
        context.close()


def test_the_page_asks_for_the_key_and_refuses_without_it(demo: DemoPage) -> None:
    key_field = demo.page.get_by_label("API key")
    assert key_field.is_visible()
    demo.send(PROMPT, "sse")
    assert "needs an API key" in demo.error.inner_text()
    key_field.fill("not-the-key")
    demo.button("Send").click()
    demo.page.wait_for_function(
        "document.getElementById('error').textContent.includes('refused this API key')"
    )
    assert demo.status() == "idle"


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_streams_and_resumes_with_the_key(demo: DemoPage, live_server, transport: str) -> None:  # type: ignore[no-untyped-def]
    expected = expected_completion(live_server.url, LONG_PROMPT, api_key=KEY)
    demo.page.get_by_label("API key").fill(KEY)
    demo.send(LONG_PROMPT, transport)
    demo.wait_for_text(60)
    demo.button("Drop connection").click()
    assert demo.wait_for_status("done", "error", "cancelled") == "done"
    assert demo.response_text() == expected
    assert demo.metric("reconnects") == "1"
    # The key went only to /auth/token, in a header; URLs carried the token.
    for exchange in demo.exchanges:
        assert KEY not in str(exchange.query)
        if exchange.path != "/auth/token":  # the page's probe: does this server need a key?
            assert exchange.status != 401, exchange.path
    (grant,) = [x for x in demo.requests_to("/auth/token", "POST") if x.status == 200]
    assert grant.headers["authorization"] == f"Bearer {KEY}"
    if transport == "sse":
        (drop,) = demo.requests_to("/debug/drop", "POST")
        assert drop.status == 200
        assert all("access_token" in e.query for e in demo.requests_to("/sse"))


def test_stop_works_with_the_key(demo: DemoPage) -> None:
    demo.page.get_by_label("API key").fill(KEY)
    demo.send(LONG_PROMPT, "sse")
    demo.wait_for_text(20)
    demo.button("Stop").click()
    assert demo.wait_for_status("done", "error", "cancelled") == "cancelled"
    (cancel,) = demo.requests_to("/cancel", "POST")
    assert cancel.status == 200
