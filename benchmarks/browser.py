"""Real browsers: what SSE and WebSocket cost and do inside headless Chromium.

Debian's Chromium (``/usr/bin/chromium``), driven by Playwright, never a
downloaded browser. The page is the server's own origin; the measures run as
JavaScript in it, with the browser's clock:

* **reconnect** -- a stream is cut by the server (``POST /debug/drop``) mid-way;
  SSE recovers with the browser's native ``EventSource`` reconnect (it waits the
  server's ``retry:`` hint, then sends ``Last-Event-ID``), WebSocket with the
  demo's own code (``server/static/transports.js``: a new socket after 250 ms,
  then ``resume``). Measured: cut -> the next event shown, and every event
  checked once, in order (lost / duplicated);
* **limit** -- seven streams at once from one page: seven ``EventSource``\\ s (an
  HTTP/1.1 browser opens at most six connections per origin, so the seventh waits
  for one to finish) against seven ``start`` messages on one WebSocket. Measured:
  each stream's time to its ``start`` event, and how long the seventh waited;
* **cpu** -- the browser's CPU time (every Chromium process: browser, network
  service, renderer; psutil) per 1,000 events received and parsed
  (``JSON.parse``), minus the same browser's idle CPU over as long.

Where Chromium or Playwright is missing the part says so and measures nothing.

Run alone: ``python -m benchmarks browser [--quick]``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from typing import Any

import psutil

from .clients import expected_text, prompts_with_tokens
from .config import SERVER_DEFAULTS, SuiteConfig
from .servers import TWINSTREAM, ServerProcess
from .stats import summarize

__all__ = ["CHROMIUM_PATH", "CHROMIUM_ARGS", "browser_unavailable", "run_browser"]

CHROMIUM_PATH = os.environ.get("TWINSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BROWSER_PARTS = ("reconnect", "limit", "cpu")

# One stream through the demo's own runners, cut once by the server; the browser's clock.
_RECONNECT_JS = """
async ([transport, prompt, maxTokens, cutAfter]) => {
  const { SseRun, WsRun } = await import("/static/transports.js");
  const now = () => performance.timeOrigin + performance.now();
  return await new Promise((resolve) => {
    const seqs = [];
    let text = "";
    let cutAt = null, reconnectedAt = null, resumedAt = null, resumedProduced = null;
    let run;
    const finish = (outcome) => resolve({
      outcome, seqs, text, cutAt, reconnectedAt, resumedAt, resumedProduced,
    });
    const handlers = {
      onStatus() {},
      onReconnect() { if (reconnectedAt === null) reconnectedAt = now(); },
      onFailure(message) { finish("failure: " + message); },
      onAbandoned(message) { finish("abandoned: " + message); },
      onEvent(event) {
        const at = now();
        seqs.push(event.seq);
        if (event.type === "delta") text += event.content;
        if (cutAt !== null && resumedAt === null && reconnectedAt !== null) {
          resumedAt = at;
          resumedProduced = event.t;
        }
        if (event.type === "done" || event.type === "error") { finish(event.type); return; }
        if (cutAt === null && event.seq >= cutAfter) {
          cutAt = now();
          fetch(`/debug/drop?stream=${encodeURIComponent(event.stream)}`, { method: "POST" });
        }
      },
    };
    const Run = transport === "sse" ? SseRun : WsRun;
    run = new Run({ prompt, maxTokens }, handlers);
    run.start();
    setTimeout(() => { run.dispose(); finish("timeout"); }, 60000);
  });
}
"""

# Seven streams at once: seven EventSources, or seven starts on one WebSocket.
_LIMIT_JS = """
async ([transport, prompts, maxTokens]) => {
  const now = () => performance.timeOrigin + performance.now();
  const began = now();
  const streams = prompts.map(() => ({ start: null, done: null, events: 0 }));
  await new Promise((resolve) => {
    let finished = 0;
    const end = (i) => {
      streams[i].done = now() - began;
      if (++finished === prompts.length) resolve();
    };
    setTimeout(resolve, 60000);
    if (transport === "sse") {
      prompts.forEach((prompt, i) => {
        const query = new URLSearchParams({ prompt, max_tokens: String(maxTokens) });
        const source = new EventSource(`/sse?${query}`);
        source.onmessage = (message) => {
          const event = JSON.parse(message.data);
          streams[i].events += 1;
          if (event.type === "start") streams[i].start = now() - began;
          if (event.type === "done" || event.type === "error") { source.close(); end(i); }
        };
      });
    } else {
      const socket = new WebSocket(`ws://${location.host}/ws`);
      const byStream = {};
      socket.onopen = () => prompts.forEach((prompt, i) =>
        socket.send(JSON.stringify({ type: "start", prompt, max_tokens: maxTokens, ref: i })));
      socket.onmessage = (message) => {
        const event = JSON.parse(message.data);
        if (event.type === "start") { byStream[event.stream] = event.ref; }
        const i = byStream[event.stream];
        if (i === undefined) return;
        streams[i].events += 1;
        if (event.type === "start") streams[i].start = now() - began;
        if (event.type === "done" || event.type === "error") {
          end(i);
          if (finished === prompts.length) socket.close();
        }
      };
    }
  });
  return streams;
}
"""

# Receive and parse streams one after another until `total` events have arrived.
_CPU_JS = """
async ([transport, prompts, maxTokens, total]) => {
  let events = 0, bytes = 0, index = 0;
  const started = performance.now();
  const one = (prompt) => new Promise((resolve) => {
    if (transport === "sse") {
      const query = new URLSearchParams({ prompt, max_tokens: String(maxTokens) });
      const source = new EventSource(`/sse?${query}`);
      source.onmessage = (message) => {
        const event = JSON.parse(message.data);
        events += 1; bytes += message.data.length;
        if (event.type === "done" || event.type === "error") { source.close(); resolve(); }
      };
      source.onerror = () => { source.close(); resolve(); };
    } else {
      const socket = new WebSocket(`ws://${location.host}/ws`);
      socket.onopen = () => socket.send(
        JSON.stringify({ type: "start", prompt, max_tokens: maxTokens, ref: 1 }));
      socket.onmessage = (message) => {
        const event = JSON.parse(message.data);
        events += 1; bytes += message.data.length;
        if (event.type === "done" || event.type === "error") { socket.close(); resolve(); }
      };
      socket.onclose = () => resolve();
    }
  });
  while (events < total) {
    await one(prompts[index % prompts.length]);
    index += 1;
  }
  return { events, bytes, streams: index, ms: performance.now() - started };
}
"""


def browser_unavailable() -> str | None:
    """``None`` when Chromium and Playwright are here, else why not (one sentence)."""
    if not (os.path.exists(CHROMIUM_PATH) or shutil.which(CHROMIUM_PATH)):
        return f"no Chromium at {CHROMIUM_PATH} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; no browser download needed)"
    return None


def _chromium_processes() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name().lower():
                found.append(child)
        except psutil.Error:
            pass
    return found


def _cpu_by_kind() -> dict[str, float]:
    """CPU seconds so far of every Chromium process we started, by process kind."""
    totals: dict[str, float] = {}
    for process in _chromium_processes():
        try:
            times = process.cpu_times()
            kind = "browser"
            for arg in process.cmdline():
                if arg.startswith("--type="):
                    kind = arg.removeprefix("--type=")
                if arg.startswith("--utility-sub-type=network"):
                    kind = "network"
        except psutil.Error:
            continue
        totals[kind] = totals.get(kind, 0.0) + times.user + times.system
    return totals


def _measure_reconnect(page: Any, config: SuiteConfig) -> dict[str, Any]:
    max_tokens = max(20, config.browser_limit_tokens)
    prompts = prompts_with_tokens(config.browser_cuts, max_tokens, "browser-cut")
    results: dict[str, Any] = {}
    for transport in ("sse", "ws"):
        runs = []
        for prompt in prompts:
            runs.append(
                page.evaluate(
                    _RECONNECT_JS, [transport, prompt, max_tokens, max(3, max_tokens // 4)]
                )
            )
        gaps = [
            (r["resumedAt"] - r["cutAt"]) / 1000
            for r in runs
            if r["resumedAt"] is not None and r["cutAt"] is not None
        ]
        noticed = [
            (r["reconnectedAt"] - r["cutAt"]) / 1000
            for r in runs
            if r["reconnectedAt"] is not None and r["cutAt"] is not None
        ]
        lost = duplicated = mismatched = 0
        for run, prompt in zip(runs, prompts):
            seqs = run["seqs"]
            final = max(seqs) if seqs else -1
            lost += len(set(range(final + 1)) - set(seqs))
            duplicated += len(seqs) - len(set(seqs))
            mismatched += run["text"] != expected_text(prompt, max_tokens)
        results[transport] = {
            "cuts": len(runs),
            "resumed": len(gaps),
            "outcomes": sorted({r["outcome"] for r in runs}),
            "cut_to_next_event_ms": summarize(gaps, 1000.0),
            "cut_to_noticed_ms": summarize(noticed, 1000.0),
            "lost": lost,
            "duplicated": duplicated,
            "text_mismatches": mismatched,
        }
    return results


def _measure_limit(page: Any, config: SuiteConfig) -> dict[str, Any]:
    prompts = prompts_with_tokens(7, config.browser_limit_tokens, "browser-limit")
    results: dict[str, Any] = {}
    for transport in ("sse", "ws"):
        streams = page.evaluate(_LIMIT_JS, [transport, prompts, config.browser_limit_tokens])
        starts = [s["start"] for s in streams]
        ordered = sorted(s for s in starts if s is not None)
        first_six = ordered[:6]
        seventh = ordered[6] if len(ordered) >= 7 else None
        results[transport] = {
            "streams": len(streams),
            "started": len(ordered),
            "complete": sum(1 for s in streams if s["done"] is not None),
            "time_to_start_ms": [round(s, 1) if s is not None else None for s in starts],
            "first_six_start_max_ms": round(max(first_six), 1) if first_six else None,
            "seventh_start_ms": round(seventh, 1) if seventh is not None else None,
            "seventh_waited_ms": (
                round(seventh - max(first_six), 1) if seventh is not None and first_six else None
            ),
            "first_done_ms": round(min(s["done"] for s in streams if s["done"] is not None), 1)
            if any(s["done"] is not None for s in streams)
            else None,
        }
    return results


def _measure_cpu(page: Any, config: SuiteConfig) -> dict[str, Any]:
    tokens = 200
    prompts = prompts_with_tokens(4, tokens, "browser-cpu")
    results: dict[str, Any] = {}
    for transport in ("sse", "ws"):
        # warm up (module caches, first connection), then an idle baseline as long as a run
        page.evaluate(_CPU_JS, [transport, prompts, 5, 1])
        time.sleep(0.3)
        before = _cpu_by_kind()
        began = time.monotonic()
        run = page.evaluate(_CPU_JS, [transport, prompts, tokens, config.browser_cpu_events])
        elapsed = time.monotonic() - began
        after = _cpu_by_kind()
        idle_before = _cpu_by_kind()
        time.sleep(min(elapsed, 3.0))
        idle_after = _cpu_by_kind()
        idle_rate = sum(idle_after.values()) - sum(idle_before.values())
        idle_rate /= min(elapsed, 3.0)
        used = sum(after.values()) - sum(before.values())
        net = max(0.0, used - idle_rate * elapsed)
        events = run["events"]
        by_kind = {
            kind: round(1e6 * (after.get(kind, 0.0) - before.get(kind, 0.0)) / events, 1)
            for kind in sorted(after)
            if events
        }
        results[transport] = {
            "events": events,
            "streams": run["streams"],
            "seconds": round(elapsed, 2),
            "events_per_s": round(events / elapsed, 1) if elapsed > 0 else None,
            "cpu_ms_per_1k_events": round(1e6 * net / events, 1) if events else None,
            "cpu_ms_per_1k_events_by_process": by_kind,
            "idle_cpu_percent": round(100 * idle_rate, 1),
        }
    return results


def _retry_hint(base_url: str) -> int | None:
    """The ``retry:`` the server sends SSE clients (what ``EventSource`` will wait)."""
    url = base_url + "sse?prompt=retry+probe&max_tokens=1"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read().decode("utf-8", "replace")
    match = re.search(r"^retry: ?(\d+)", body, re.MULTILINE)
    return int(match.group(1)) if match else None


def _chromium_version() -> str:
    try:
        done = subprocess.run(
            [CHROMIUM_PATH, "--version"], capture_output=True, text=True, timeout=20
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def run_browser(
    config: SuiteConfig, parts: tuple[str, ...] | None = None, progress: bool = True
) -> dict[str, Any]:
    """The browser measures named in ``parts`` (default: ``config.browser_parts``)."""
    wanted = tuple(parts or config.browser_parts)
    missing = browser_unavailable()
    if missing is not None:
        return {"available": False, "reason": missing, "parts": list(wanted)}
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {
        "available": True,
        "parts": list(wanted),
        "chromium": _chromium_version(),
        "tokens_per_second": config.tokens_per_second,
    }
    # the CPU measure streams at 200 tokens/s, so it takes seconds, not minutes; each
    # event is still its own write (the model waits 5 ms between tokens)
    paced = ServerProcess(
        TWINSTREAM.command(
            config.tokens_per_second or SERVER_DEFAULTS.tokens_per_second,
            config.first_token_latency,
        )
    ).start()
    fast = ServerProcess(TWINSTREAM.command(200.0, 0.0)).start() if "cpu" in wanted else None
    try:
        results["retry_ms"] = _retry_hint(paced.url)
        with sync_playwright() as playwright:
            try:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS
                )
            except PlaywrightError as exc:
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                return {
                    "available": False,
                    "reason": f"Chromium did not start: {first_line}",
                    "parts": list(wanted),
                }
            try:
                for part in wanted:
                    if progress:
                        print(f"   browser: {part}", file=sys.stderr, flush=True)
                    server = fast if part == "cpu" and fast is not None else paced
                    context = browser.new_context()
                    try:
                        page = context.new_page()
                        page.goto(server.url + "healthz")
                        if part == "reconnect":
                            results["reconnect"] = _measure_reconnect(page, config)
                        elif part == "limit":
                            results["limit"] = _measure_limit(page, config)
                        elif part == "cpu":
                            results["cpu"] = _measure_cpu(page, config)
                    finally:
                        context.close()
            finally:
                browser.close()
    finally:
        paced.stop()
        if fast is not None:
            fast.stop()
    return results
