"""Driving the browser demo (``server/static``) with Debian's Chromium through Playwright.

Shared by ``tests/server/test_demo_browser.py`` and ``tests/support/browser_screenshot.py``.
Playwright never downloads a browser here: it launches ``/usr/bin/chromium``.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, Locator, Page, Playwright, Response

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TRANSPORT_LABELS = {"sse": "SSE", "ws": "WebSocket"}

# Records every value the status line takes, so a test can see short-lived ones
# ("reconnecting") after the fact.
_STATUS_RECORDER = """
window.__statusLog = [];
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("status");
  const record = () => window.__statusLog.push(status.dataset.status);
  new MutationObserver(record).observe(status, { attributeFilter: ["data-status"] });
});
"""


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)


def expected_completion(
    base_url: str,
    prompt: str,
    max_tokens: int = 256,
    history: list[dict[str, str]] = (),  # type: ignore[assignment]
    api_key: str | None = None,
) -> str:
    """The uninterrupted reply to ``prompt`` after ``history`` (earlier turns),
    from the non-streaming OpenAI-compatible endpoint."""
    messages = [*history, {"role": "user", "content": prompt}]
    body = json.dumps({"messages": messages, "max_tokens": max_tokens})
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        base_url + "/v1/chat/completions", data=body.encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


@dataclass
class Exchange:
    """One HTTP request the page made, and the status it got."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int

    @classmethod
    def from_response(cls, response: Response) -> Exchange:
        url = urlsplit(response.url)
        return cls(
            method=response.request.method,
            path=url.path,
            query=parse_qs(url.query),
            headers=response.request.all_headers(),
            status=response.status,
        )


class DemoPage:
    """The demo page, found the way a person finds it: by labels and roles."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.errors: list[str] = []
        self.exchanges: list[Exchange] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "response", lambda response: self.exchanges.append(Exchange.from_response(response))
        )
        # Headers the network stack adds (EventSource's Last-Event-ID among them) show
        # only in the DevTools protocol's "extra info" events, keyed by request id.
        self.raw_headers: list[dict[str, str]] = []
        devtools = page.context.new_cdp_session(page)
        devtools.on(
            "Network.requestWillBeSentExtraInfo",
            lambda params: self.raw_headers.append(
                {name.lower(): value for name, value in params["headers"].items()}
            ),
        )
        devtools.send("Network.enable")
        page.add_init_script(_STATUS_RECORDER)
        page.goto(base_url + "/")
        page.wait_for_selector("html[data-ready]")

    @property
    def response(self) -> Locator:
        return self.page.get_by_role("region", name="Response")

    @property
    def error(self) -> Locator:
        return self.page.get_by_role("alert")

    def button(self, name: str) -> Locator:
        return self.page.get_by_role("button", name=name, exact=True)

    def send(self, prompt: str, transport: str, max_tokens: int | None = None) -> None:
        self.page.get_by_label("Prompt").fill(prompt)
        self.page.get_by_label(TRANSPORT_LABELS[transport], exact=False).check()
        if max_tokens is not None:
            self.page.get_by_label("Max tokens").fill(str(max_tokens))
        self.button("Send").click()

    def status(self) -> str:
        return self.page.locator("#status").get_attribute("data-status") or ""

    def status_log(self) -> list[str]:
        return self.page.evaluate("window.__statusLog")

    def wait_for_status(self, *statuses: str, timeout: float = 30) -> str:
        self.page.wait_for_function(
            "wanted => wanted.includes(document.getElementById('status').dataset.status)",
            arg=list(statuses),
            timeout=timeout * 1000,
        )
        return self.status()

    def wait_for_text(self, characters: int, timeout: float = 30) -> str:
        """Wait until Response holds at least ``characters`` characters; return its text."""
        self.page.wait_for_function(
            "n => document.getElementById('response').textContent.length >= n",
            arg=characters,
            timeout=timeout * 1000,
        )
        return self.response_text()

    def requests_to(self, path: str, method: str = "GET") -> list[Exchange]:
        return [x for x in self.exchanges if x.path == path and x.method == method]

    def last_event_ids_sent(self) -> list[str]:
        """Every ``Last-Event-ID`` header the browser sent, in order."""
        return [h["last-event-id"] for h in self.raw_headers if "last-event-id" in h]

    def response_text(self) -> str:
        return self.response.text_content() or ""

    def metric(self, name: str) -> str:
        return self.page.locator(f"#metric-{name}").inner_text()

    def conversation(self) -> list[tuple[str, str]]:
        """The Conversation list: (who, text) per turn, oldest first."""
        turns = self.page.evaluate(
            """() => [...document.querySelectorAll('#conversation li')].map((li) => [
              li.querySelector('.turn-role').textContent,
              li.querySelector('.turn-text').textContent,
            ])"""
        )
        return [(who, text) for who, text in turns]

    def history_rows(self) -> list[dict[str, Any]]:
        """Past runs, newest first, as {column header: cell text}."""
        return self.page.evaluate(
            """() => {
              const headers = [...document.querySelectorAll('#history thead th')]
                .map((th) => th.textContent.trim());
              return [...document.querySelectorAll('#history-body tr:not(.empty)')].map((tr) =>
                Object.fromEntries([...tr.cells].map((td, i) => [headers[i], td.textContent])));
            }"""
        )
