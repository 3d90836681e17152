"""The browser demo in a real headless Chromium (Debian's), against the real server.

Each test opens the page at ``/`` and uses it like a person would: labelled
controls, the Response region, the status line. The synthetic model is
deterministic, so the expected reply comes from an uninterrupted run of the
same prompt through ``/v1/chat/completions``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from playwright.sync_api import Browser, Route, sync_playwright
from support.browser_demo import DemoPage, expected_completion, launch_chromium

from server.app import Settings

TRANSPORTS = ["sse", "ws"]
SHORT_PROMPT = "Compare the two transports"  # 42 tokens: about a second at 40 tokens/s
MEDIUM_PROMPT = "Explain SSE and WebSockets"  # 72 tokens: about two seconds
LONG_PROMPT = "What is Last-Event-ID?"  # 169 tokens: about four seconds


@pytest.fixture(scope="module")
def uninterrupted() -> Iterator[ThreadPoolExecutor]:
    """Fetches expected replies in the background while the browser streams the same prompt."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def expect_reply(pool: ThreadPoolExecutor, live_server, prompt: str) -> Future[str]:
    return pool.submit(expected_completion, live_server.url, prompt)


@pytest.fixture
def live_settings(request: pytest.FixtureRequest) -> Settings:
    # Paced so that a stream lasts long enough to be dropped or stopped mid-way;
    # a test may parametrize this fixture (indirect) with a fail_after_tokens count.
    return Settings(
        tokens_per_second=40,
        first_token_latency=0,
        ws_ping_interval=0,
        fail_after_tokens=getattr(request, "param", None),
        debug_drop=True,  # the demo's Drop connection asks the server (--debug)
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
def demo(browser: Browser, live_server) -> Iterator[DemoPage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = DemoPage(context.new_page(), live_server.url)
        yield page
        assert page.errors == [], "the page raised JavaScript errors"
    finally:
        context.close()


def server_events(live_server, stream_id: str) -> list[dict]:
    """A stream's event log as the server holds it (read on the server's own loop)."""
    store = live_server.store
    return live_server.call(lambda: list(store.get(stream_id).events))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_streams_the_full_completion(demo: DemoPage, live_server, transport: str) -> None:
    expected = expected_completion(live_server.url, SHORT_PROMPT)

    demo.send(SHORT_PROMPT, transport)

    assert demo.wait_for_status("done", "error", "cancelled") == "done"
    assert demo.response_text() == expected
    tokens = int(demo.metric("tokens"))
    assert tokens > 10
    assert int(demo.metric("events")) == tokens + 2  # start, the deltas, done
    assert int(demo.metric("bytes").replace(",", "")) > len(expected.encode())
    assert demo.metric("reconnects") == "0"
    assert "streaming" in demo.status_log()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_drop_connection_resumes_to_the_same_text(
    demo: DemoPage, live_server, uninterrupted: ThreadPoolExecutor, transport: str
) -> None:
    reply = expect_reply(uninterrupted, live_server, LONG_PROMPT)

    demo.send(LONG_PROMPT, transport)
    before_drop = demo.wait_for_text(60)
    demo.button("Drop connection").click()

    assert demo.wait_for_status("done", "error", "cancelled") == "done"
    expected = reply.result(timeout=30)
    assert len(before_drop) < len(expected), "the drop must happen mid-stream"
    assert demo.response_text() == expected
    assert demo.metric("reconnects") == "1"
    log = demo.status_log()
    assert "reconnecting" in log
    assert log.index("reconnecting") < len(log) - 1 - log[::-1].index("streaming")
    assert int(demo.metric("events")) == int(demo.metric("tokens")) + 2  # no duplicates
    if transport == "sse":
        assert_sse_resumed_after_a_delivered_event(demo)


def assert_sse_resumed_after_a_delivered_event(demo: DemoPage) -> None:
    """The page asked the server to cut the response (``POST /debug/drop``) and the
    browser's own EventSource reconnected to the same URL with ``Last-Event-ID``,
    naming the page's stream and a seq it had received."""
    (drop,) = demo.requests_to("/debug/drop", "POST")
    assert drop.status == 200
    first, resumed = demo.requests_to("/sse")
    assert resumed.query == first.query  # same URL: the browser's reconnect, not the page's
    (last_event_id,) = demo.last_event_ids_sent()
    stream, _, seq = last_event_id.rpartition(":")
    stream_id = demo.page.locator("#run-meta").inner_text().split()[-1]
    assert "prompt" in first.query and stream == stream_id and int(seq) >= 1
    assert resumed.status == 200


def test_sse_drop_resumes_one_stream_on_the_server(demo: DemoPage, live_server) -> None:
    """EventSource's reconnect resumed the stream: the server never started a second one."""
    demo.send(MEDIUM_PROMPT, "sse")
    before_drop = demo.wait_for_text(60)
    demo.button("Drop connection").click()

    assert demo.wait_for_status("done", "error", "cancelled") == "done"
    assert len(live_server.store) == 1
    assert_sse_resumed_after_a_delivered_event(demo)
    expected = expected_completion(live_server.url, MEDIUM_PROMPT)
    assert len(before_drop) < len(expected)
    assert demo.response_text() == expected


class TestWithoutTheDropEndpoint:
    """A server started without ``--debug``: the page cuts the EventSource
    itself and reopens it at ``?last_event_id=``, as a careful client would."""

    @pytest.fixture
    def live_settings(self) -> Settings:
        return Settings(
            tokens_per_second=40, first_token_latency=0, ws_ping_interval=0, debug_drop=False
        )

    def test_page_reopens_with_last_event_id(self, demo: DemoPage, live_server) -> None:
        demo.send(MEDIUM_PROMPT, "sse")
        before_drop = demo.wait_for_text(60)
        demo.button("Drop connection").click()

        assert demo.wait_for_status("done", "error", "cancelled") == "done"
        (drop,) = demo.requests_to("/debug/drop", "POST")
        assert drop.status == 404
        first, resumed = demo.requests_to("/sse")
        (last_event_id,) = resumed.query["last_event_id"]
        stream_id = demo.page.locator("#run-meta").inner_text().split()[-1]
        assert last_event_id.startswith(stream_id + ":")
        assert len(live_server.store) == 1
        expected = expected_completion(live_server.url, MEDIUM_PROMPT)
        assert len(before_drop) < len(expected)
        assert demo.response_text() == expected
        assert demo.metric("reconnects") == "1"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_cancels_the_stream_on_the_server(
    demo: DemoPage, live_server, uninterrupted: ThreadPoolExecutor, transport: str
) -> None:
    reply = expect_reply(uninterrupted, live_server, LONG_PROMPT)

    demo.send(LONG_PROMPT, transport)
    demo.wait_for_text(20)
    demo.button("Stop").click()

    assert demo.wait_for_status("done", "error", "cancelled") == "cancelled"
    expected = reply.result(timeout=30)
    text = demo.response_text()
    assert 20 <= len(text) < len(expected)
    assert expected.startswith(text)
    stream_id = demo.page.locator("#run-meta").inner_text().split()[-1]
    last_event = server_events(live_server, stream_id)[-1]
    assert (last_event["type"], last_event["finish_reason"]) == ("done", "cancelled")
    if transport == "sse":
        assert [x.status for x in demo.requests_to("/cancel", "POST")] == [200]


def test_stop_before_the_stream_starts_gives_up_locally(demo: DemoPage) -> None:
    held: list[Route] = []
    demo.page.route("**/sse?*", lambda route: held.append(route))  # never answered

    demo.send(SHORT_PROMPT, "sse")
    demo.page.wait_for_function("() => document.getElementById('stop').disabled === false")
    demo.button("Stop").click()

    assert demo.wait_for_status("done", "error", "cancelled") == "cancelled"
    assert len(held) == 1
    assert demo.button("Send").is_enabled()
    assert demo.history_rows()[0]["Result"] == "cancelled"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_error_is_shown(demo: DemoPage, transport: str) -> None:
    demo.send("x" * 40 * 1024, transport)

    assert demo.wait_for_status("done", "error", "cancelled") == "error"
    message = demo.error.inner_text()
    assert "40960 bytes" in message
    assert "32768 bytes" in message
    assert "prompt_too_long" in message
    assert demo.response_text() == ""


@pytest.mark.parametrize("live_settings", [12], indirect=True)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stream_error_is_shown(demo: DemoPage, transport: str) -> None:
    demo.send(SHORT_PROMPT, transport)

    assert demo.wait_for_status("done", "error", "cancelled") == "error"
    assert "the model failed while generating" in demo.error.inner_text()
    assert "upstream_error" in demo.error.inner_text()
    assert int(demo.metric("tokens")) == 12
    assert demo.history_rows()[0]["Result"] == "error"


def test_past_runs_compare_transports(demo: DemoPage, live_server) -> None:
    expected = expected_completion(live_server.url, SHORT_PROMPT)
    demo.send(SHORT_PROMPT, "sse")
    assert demo.wait_for_status("done", "error", "cancelled") == "done"

    # A new conversation, so the same prompt asks the same thing; the second run
    # is sent with Enter from the prompt box.
    demo.button("New conversation").click()
    assert demo.conversation() == []
    demo.page.get_by_label("WebSocket").check()
    demo.page.get_by_label("Prompt").press("Enter")
    demo.page.wait_for_function("() => document.querySelectorAll('#history-body tr').length == 2")

    assert demo.status() == "done"
    assert demo.response_text() == expected
    rows = demo.history_rows()
    assert [row["Transport"] for row in rows] == ["WebSocket", "SSE"]
    assert {row["Result"] for row in rows} == {"done"}
    assert rows[0]["Tokens"] == rows[1]["Tokens"] == demo.metric("tokens")
    chart = demo.page.locator("#chart svg")
    assert chart.locator(".series-sse path").count() == 1
    assert chart.locator(".series-ws path").count() == 1


def test_keeps_a_conversation_over_both_transports(demo: DemoPage, live_server) -> None:
    """Each answer joins the conversation, which goes with the next prompt, whatever
    the transport: turn 2 over WebSocket, turn 3 over SSE (POST /streams, then
    EventSource at /sse?stream=S). Each reply is what /v1 says to the same history."""
    history: list[dict[str, str]] = []
    turns = [("Hi there", "sse", 12), ("What did I just say?", "ws", 10), ("And before?", "sse", 8)]
    for prompt, transport, max_tokens in turns:
        expected = expected_completion(live_server.url, prompt, max_tokens, history)
        demo.send(prompt, transport, max_tokens)
        assert demo.wait_for_status("done", "error", "cancelled") == "done"
        assert demo.response_text() == expected
        history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": expected}]
        assert demo.conversation() == [
            ("You" if m["role"] == "user" else "Model", m["content"]) for m in history
        ]
    assert expected != expected_completion(live_server.url, "And before?", 8)  # context mattered
    posted = demo.requests_to("/streams", "POST")
    assert [x.status for x in posted] == [201]  # the SSE turn with a history
    followed = [x for x in demo.requests_to("/sse") if "stream" in x.query]
    assert len(followed) == 1 and followed[0].status == 200
    demo.button("New conversation").click()
    assert demo.conversation() == [] and demo.response_text() == ""


def test_a_long_prompt_goes_by_post_over_sse(demo: DemoPage, live_server) -> None:
    prompt = "é" * 3000  # 18,000 characters once percent-encoded: too long for a URL
    expected = expected_completion(live_server.url, prompt, 6)
    demo.send(prompt, "sse", 6)
    assert demo.wait_for_status("done", "error", "cancelled") == "done"
    assert demo.response_text() == expected
    assert [x.status for x in demo.requests_to("/streams", "POST")] == [201]
    too_long = "x" * 40_000
    demo.button("New conversation").click()
    demo.send(too_long, "sse", 6)
    assert demo.wait_for_status("done", "error", "cancelled") == "error"
    assert "prompt_too_long" in (demo.error.text_content() or "")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_synthetic_model_calls_the_offered_tool(
    demo: DemoPage, live_server, transport: str
) -> None:
    """No key needed to see tool calling: the embedded model calls the tool the
    prompt names, and the page shows the call as it streams."""
    demo.page.get_by_label("Offer a weather tool").check()
    demo.send("What is the weather in Paris?", transport)
    assert demo.wait_for_status("done", "error", "cancelled") == "done"
    assert demo.page.locator("#status-text").inner_text() == "done — the model called a tool"
    shown = demo.page.locator("#response .tool-call").inner_text()
    name, arguments = shown.split("(", 1)
    assert name == "weather" and arguments.endswith(")")
    assert set(json.loads(arguments[:-1])) == {"city"}
    assert demo.response_text() == shown  # the call is the whole reply
    if transport == "sse":  # tools are a parameter: the request went by POST /streams
        assert [x.status for x in demo.requests_to("/streams", "POST")] == [201]


def test_fits_a_phone_screen(demo: DemoPage) -> None:
    demo.page.set_viewport_size({"width": 360, "height": 740})
    overflow = demo.page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    for name in ("Send", "Stop", "Drop connection"):
        box = demo.button(name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
