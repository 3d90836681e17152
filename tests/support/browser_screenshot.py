"""Regenerate ``docs/demo.png``: the demo page mid-stream, with past runs and the chart.

    python tests/support/browser_screenshot.py [docs/demo.png]

Starts ``python -m server`` on a free port, sends the same prompt over SSE and,
in a new conversation, over WebSocket (dropping each connection once), then
asks a follow-up over SSE and takes the picture while that third run, which
carries the conversation so far, is streaming.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from support.browser_demo import DemoPage, launch_chromium

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "Tell me about streaming"
FOLLOW_UP = "And how does it resume?"


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", "--tokens-per-second", "30"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    for line in server.stdout:
        if "serving on" in line:
            return server, line.split("serving on", 1)[1].strip().rstrip("/")
    server.kill()
    raise RuntimeError("the server did not start")


def run_with_drop(demo: DemoPage, transport: str) -> None:
    demo.send(PROMPT, transport)
    demo.wait_for_text(200)
    demo.button("Drop connection").click()
    demo.wait_for_status("done", "error", "cancelled")


def main(output: Path) -> None:
    server, url = start_server()
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            demo = DemoPage(page, url)
            run_with_drop(demo, "sse")
            demo.button("New conversation").click()
            run_with_drop(demo, "ws")
            demo.send(FOLLOW_UP, "sse")
            demo.wait_for_text(300)
            time.sleep(0.2)  # let the next animation frame draw the numbers
            page.screenshot(path=str(output), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print(f"wrote {output} ({output.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "demo.png")
