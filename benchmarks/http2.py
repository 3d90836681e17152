"""HTTP/2 in front: what a browser's many streams do over HTTP/1.1 and over HTTP/2.

The part starts Debian's ``nginx`` with TLS (a throw-away self-signed certificate for
127.0.0.1 that the run makes with ``openssl``; Chromium trusts that one key only, with
``--ignore-certificate-errors-spki-list``) on two ports, one speaking HTTP/1.1 and one
``http2``, both proxying to one twinstream over HTTP/1.1 with buffering off (WebSocket
upgrades passed through). In headless Chromium (Playwright) one page opens N
``EventSource``\\ s (N = ``http2_counts``: 7, 20 and 50 in the full preset), then N streams
on one WebSocket, over each port. Measured, with the browser's clock: each stream's time
to its first event (``start``), the last stream's first event, and how many connections
the browser opened (nginx logs each request's connection serial).

HTTP/1.1 allows six connections per origin: the seventh EventSource waits for a stream
to end. HTTP/2 carries every stream of an origin on one connection, up to the server's
``SETTINGS_MAX_CONCURRENT_STREAMS`` (:data:`MAX_CONCURRENT_STREAMS`, the usual 100 set
here in nginx): past it the next stream waits again. A WebSocket never rides inside
HTTP/2 (nginx does not speak RFC 8441): it takes its own connection either way.

Run alone: ``python -m benchmarks http2 [--quick]``.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .browser import CHROMIUM_ARGS, CHROMIUM_PATH, browser_unavailable
from .clients import prompts_with_tokens
from .config import SERVER_DEFAULTS, SuiteConfig
from .servers import TWINSTREAM, ServerProcess

__all__ = [
    "MAX_CONCURRENT_STREAMS",
    "nginx_binary",
    "make_certificate",
    "TLSProxy",
    "run_http2",
]

#: nginx's http2_max_concurrent_streams here: the limit most servers and CDNs announce
MAX_CONCURRENT_STREAMS = 100

_CONFIG = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format connections '$server_port $connection $server_protocol $request_uri';
    access_log {dir}/access.log connections;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    http2_max_concurrent_streams {streams};
    keepalive_requests 100000;
    upstream twinstream {{ server 127.0.0.1:{backend}; keepalive 64; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
    server {{
        listen 127.0.0.1:{http1} ssl;
        listen 127.0.0.1:{http2} ssl http2;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_cache off;
        proxy_read_timeout 75s;
        location /ws {{
            proxy_pass http://twinstream;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
        location / {{ proxy_pass http://twinstream; }}
    }}
}}
"""

# N streams at once: N EventSources, or N starts on one WebSocket; the browser's clock.
_STREAMS_JS = """
async ([transport, prompts, maxTokens]) => {
  const now = () => performance.now();
  const began = now();
  const streams = prompts.map(() => ({ start: null, done: null }));
  await new Promise((resolve) => {
    let finished = 0;
    const end = (i) => {
      if (streams[i].done !== null) return;
      streams[i].done = now() - began;
      if (++finished === prompts.length) resolve();
    };
    setTimeout(resolve, 120000);
    if (transport === "sse") {
      prompts.forEach((prompt, i) => {
        const query = new URLSearchParams({ prompt, max_tokens: String(maxTokens) });
        const source = new EventSource(`/sse?${query}`);
        source.onmessage = (message) => {
          const event = JSON.parse(message.data);
          if (event.type === "start" && streams[i].start === null) streams[i].start = now() - began;
          if (event.type === "done" || event.type === "error") { source.close(); end(i); }
        };
      });
    } else {
      const socket = new WebSocket(`wss://${location.host}/ws`);
      const byStream = {};
      socket.onopen = () => prompts.forEach((prompt, i) =>
        socket.send(JSON.stringify({ type: "start", prompt, max_tokens: maxTokens, ref: i })));
      socket.onmessage = (message) => {
        const event = JSON.parse(message.data);
        if (event.type === "start") byStream[event.stream] = event.ref;
        const i = byStream[event.stream];
        if (i === undefined) return;
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


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def make_certificate(folder: Path) -> str:
    """A self-signed certificate for 127.0.0.1 (a day long) into ``folder``; returns
    its key's SPKI SHA-256 in base64, what Chromium is told to trust."""
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1",
            "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    spki = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(folder / "cert.pem")],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=spki,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TLSProxy:
    """nginx with TLS on an HTTP/1.1 port and an HTTP/2 port, in front of ``backend``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="twinstream-h2-"))
        self.spki = make_certificate(self.dir)
        self.ports = {"http1": _free_port(), "http2": _free_port()}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, backend: int) -> TLSProxy:
        """Serve, in front of twinstream on port ``backend``."""
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
        config = _CONFIG.format(
            dir=self.dir, backend=backend, streams=MAX_CONCURRENT_STREAMS, **self.ports
        )
        (self.dir / "nginx.conf").write_text(config, encoding="utf-8")
        self.process = subprocess.Popen(
            [binary, "-e", "stderr", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        for port in self.ports.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError("nginx did not start") from None
                    time.sleep(0.05)
        return self

    @property
    def origins(self) -> list[str]:
        """The pages' origins, which twinstream must allow (``--allowed-origin``): behind
        TLS their scheme is https, the backend's own is http."""
        return [self.origin(version) for version in self.ports]

    def origin(self, version: str) -> str:
        return f"https://127.0.0.1:{self.ports[version]}"

    def connections(self, version: str, after: int) -> tuple[int, list[str]]:
        """Connections that carried requests on ``version``'s port, counting from log
        line ``after`` (nginx writes a request's line when it ends), and the protocols
        those requests came in (a WebSocket's is HTTP/1.1 on either port)."""
        port = str(self.ports[version])
        lines = [line.split() for line in self.log_lines()[after:]]
        mine = [line for line in lines if line[0] == port]
        return len({line[1] for line in mine}), sorted({line[2] for line in mine})

    def log_lines(self) -> list[str]:
        path = self.dir / "access.log"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _measure(page: Any, proxy: TLSProxy, version: str, transport: str, count: int,
             tokens: int) -> dict[str, Any]:  # fmt: skip
    prompts = prompts_with_tokens(count, tokens, f"h2-{version}-{transport}-{count}")
    logged = len(proxy.log_lines())
    streams = page.evaluate(_STREAMS_JS, [transport, prompts, tokens])
    time.sleep(0.3)  # nginx logs a request when it ends; the WebSocket's on close
    connections, protocols = proxy.connections(version, logged)
    starts = [s["start"] for s in streams]
    started = [s for s in starts if s is not None]
    ordered = sorted(started)
    return {
        "streams": count,
        "started": len(started),
        "complete": sum(1 for s in streams if s["done"] is not None),
        "first_event_ms": [round(s, 1) if s is not None else None for s in starts],
        "first_event_p50_ms": round(ordered[len(ordered) // 2], 1) if ordered else None,
        "last_first_event_ms": round(ordered[-1], 1) if len(ordered) == count else None,
        "first_done_ms": round(min(s["done"] for s in streams if s["done"] is not None), 1)
        if any(s["done"] is not None for s in streams)
        else None,
        "connections": connections,
        "request_protocols": protocols,
    }


def _version(
    browser: Any, proxy: TLSProxy, version: str, config: SuiteConfig, progress: bool
) -> dict[str, Any]:
    """Every count and transport through ``version``'s port, each in a fresh browser
    context (its own connection pool)."""
    measured: dict[str, Any] = {}
    protocol = None
    for count in config.http2_counts:
        for transport in ("sse", "ws"):
            if progress:
                print(f"   http2: {version} {transport} x{count}", file=sys.stderr, flush=True)
            context = browser.new_context()
            try:
                page = context.new_page()
                response = page.goto(proxy.origin(version) + "/healthz")
                # what the page's own request went over: http/1.1 or h2
                protocol = page.evaluate(
                    "performance.getEntriesByType('navigation')[0].nextHopProtocol"
                )
                entry = _measure(
                    page, proxy, version, transport, count, config.browser_limit_tokens
                )
                entry["page_status"] = response.status if response else None
                measured.setdefault(str(count), {})[transport] = entry
            finally:
                context.close()
    return {"protocol": protocol, "counts": measured}


def run_http2(config: SuiteConfig, progress: bool = True) -> dict[str, Any]:
    """Every count of ``http2_counts``, EventSource and WebSocket, on HTTP/1.1 and HTTP/2."""
    missing = browser_unavailable() or (None if nginx_binary() else "nginx is not installed")
    if missing is not None:
        return {"available": False, "reason": missing}
    from playwright.sync_api import sync_playwright

    tokens = config.browser_limit_tokens
    results: dict[str, Any] = {
        "available": True,
        "counts": list(config.http2_counts),
        "tokens": tokens,
        "tokens_per_second": config.tokens_per_second or SERVER_DEFAULTS.tokens_per_second,
        "max_concurrent_streams": MAX_CONCURRENT_STREAMS,
        "versions": {},
    }
    proxy = TLSProxy()
    command = TWINSTREAM.command(results["tokens_per_second"], config.first_token_latency)
    command += ["--allowed-origin", ",".join(proxy.origins)]
    try:
        with ServerProcess(command) as server:
            proxy.start(int(server.url.rstrip("/").rsplit(":", 1)[1]))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM_PATH,
                    args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={proxy.spki}"],
                )
                try:
                    for version in ("http1", "http2"):
                        results["versions"][version] = _version(
                            browser, proxy, version, config, progress
                        )
                finally:
                    browser.close()
    finally:
        proxy.stop()
    return results
