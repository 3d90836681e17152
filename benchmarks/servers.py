"""Starting the servers under test as subprocesses, and watching their CPU and memory.

Every server prints ``... serving on http://HOST:PORT/`` on stdout once it
listens (``--port 0`` picks a free port); :class:`ServerProcess` waits for that
line. :class:`ResourceSampler` samples a process's CPU time and RSS with psutil
in a background thread so any time window can be measured afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "ServerSpec",
    "ServerProcess",
    "stop_process",
    "ResourceSampler",
    "TWINSTREAM",
    "SSE_STARLETTE",
    "WEBSOCKETS",
    "NODE",
    "NODE_PEER_DIR",
    "PEER_SPECS",
    "PYTHON_PEERS",
    "LOOPS",
    "with_loop",
    "node_peer_ready",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
_READY = re.compile(r"serving on (http://\S+)")


#: the event loops a Python server can run on (``--loop``); the first is the default
LOOPS = ("asyncio", "uvloop")
#: the Node.js peer's package (its own package.json and lockfile: ``npm ci --prefix`` it)
NODE_PEER_DIR = REPO_ROOT / "benchmarks" / "peers" / "node"


@dataclass(frozen=True)
class ServerSpec:
    """A server the suite can start: a name, the transports it speaks, a command line.

    A Python server runs as ``python -m module``; another one names its ``program``
    (the Node peer: ``node .../server.mjs``). Every one takes ``--port 0``,
    ``--tokens-per-second`` and ``--first-token-latency``; a Python one also
    ``--loop`` when ``loop`` is not the default."""

    name: str
    transports: tuple[str, ...]
    module: str
    resumable: bool = False
    program: tuple[str, ...] = ()
    loop: str = LOOPS[0]

    def command(self, tokens_per_second: float, first_token_latency: float) -> list[str]:
        args = [
            *(self.program or (sys.executable, "-m", self.module)),
            "--port",
            "0",
            "--tokens-per-second",
            str(tokens_per_second),
            "--first-token-latency",
            str(first_token_latency),
        ]
        if self.loop != LOOPS[0]:
            args += ["--loop", self.loop]
        if self.module == "server":
            # compression is only negotiated when a client offers it (permessage-deflate,
            # Accept-Encoding: gzip), so enabling it changes nothing for clients that do not.
            args += [
                "--ws-compression",
                "--sse-compression",
                "--log-level",
                "warning",
                "--idle-timeout",
                "30",
            ]
            # The load comes from one address: no per-address start limit;
            # --debug serves POST /debug/drop (the reconnect benchmark's server drop).
            args += ["--streams-per-minute", "0", "--debug"]
        return args


TWINSTREAM = ServerSpec("twinstream", ("sse", "ws"), "server", resumable=True)
SSE_STARLETTE = ServerSpec("sse-starlette", ("sse",), "benchmarks.peers.sse_starlette_server")
WEBSOCKETS = ServerSpec("websockets", ("ws",), "benchmarks.peers.websockets_server")
NODE = ServerSpec(
    "node",
    ("sse", "ws"),
    "node",
    program=("node", str(NODE_PEER_DIR / "server.mjs")),
)
#: the Python reference servers (the network profiles part runs these)
PYTHON_PEERS = (SSE_STARLETTE, WEBSOCKETS)
PEER_SPECS = (*PYTHON_PEERS, NODE)


def with_loop(spec: ServerSpec, loop: str) -> ServerSpec:
    """``spec`` on event loop ``loop``, named ``NAME+LOOP`` unless it is the default
    (the Node peer has one loop: ValueError)."""
    if loop not in LOOPS:
        raise ValueError(f"unknown event loop {loop!r}; choose from {', '.join(LOOPS)}")
    if loop == LOOPS[0]:
        return spec
    if spec.program:
        raise ValueError(f"{spec.name} is not a Python server: it has no --loop")
    base = spec.name.split("+")[0]
    return replace(spec, name=f"{base}+{loop}", loop=loop)


def node_peer_ready() -> str | None:
    """Why the Node peer cannot start here (None: it can)."""
    if shutil.which("node") is None:
        return "node is not installed (Debian's nodejs)"
    if not (NODE_PEER_DIR / "node_modules" / "ws").is_dir():
        return f"the ws package is missing: npm ci --prefix {NODE_PEER_DIR.relative_to(REPO_ROOT)}"
    return None


def stop_process(process: subprocess.Popen[Any], wait: float = 10) -> None:
    """Stop a server now. twinstream drains on SIGTERM (live streams may run on for
    ``--drain-timeout``); a second SIGTERM ends them at once; past ``wait`` seconds
    more it is killed."""
    process.terminate()
    try:
        process.wait(2)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class ServerProcess:
    """A server subprocess; use as a context manager so it is always stopped."""

    def __init__(
        self, command: Sequence[str], startup_timeout: float = 30.0, stderr: Path | None = None
    ) -> None:
        self.command = list(command)
        self.startup_timeout = startup_timeout
        self.stderr = stderr  # a file for the server's log; None discards it
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> ServerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=self.stderr.open("ab") if self.stderr else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        found: list[str] = []

        def read_ready_line() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                match = _READY.search(line)
                if match:
                    found.append(match.group(1))
                    break
            # keep draining so the server never blocks on a full pipe
            for _ in self.process.stdout:
                pass

        threading.Thread(target=read_ready_line, daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not found:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.command}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not report ready: {self.command}")
            time.sleep(0.02)
        self.url = found[0] if found[0].endswith("/") else found[0] + "/"
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_process(self.process)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class Sample:
    at: float  # wall clock
    cpu_seconds: float  # user + system, cumulative
    rss_bytes: int
    machine_busy_seconds: float = 0.0  # all cores, all processes, cumulative
    machine_total_seconds: float = 0.0


def _machine_times() -> tuple[float, float]:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total


@dataclass
class ResourceSampler:
    """Samples one process's cumulative CPU time and RSS every ``interval`` seconds."""

    pid: int | None
    interval: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ResourceSampler:
        if self.pid is None:
            return self
        try:
            self._process = psutil.Process(self.pid)
        except psutil.Error:
            self.pid = None
            return self
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def sample(self) -> Sample | None:
        if self.pid is None:
            return None
        try:
            with self._process.oneshot():
                times = self._process.cpu_times()
                rss = self._process.memory_info().rss
        except psutil.Error:
            return None
        busy, total = _machine_times()
        sample = Sample(time.time(), times.user + times.system, rss, busy, total)
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def __enter__(self) -> ResourceSampler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _cpu_at(self, moment: float) -> float | None:
        """Cumulative CPU seconds at ``moment``, interpolated between samples."""
        if not self.samples:
            return None
        before = [s for s in self.samples if s.at <= moment]
        after = [s for s in self.samples if s.at >= moment]
        if not before:
            return self.samples[0].cpu_seconds
        if not after:
            return self.samples[-1].cpu_seconds
        low, high = before[-1], after[0]
        if high.at == low.at:
            return low.cpu_seconds
        weight = (moment - low.at) / (high.at - low.at)
        return low.cpu_seconds + weight * (high.cpu_seconds - low.cpu_seconds)

    def cpu_seconds_between(self, start: float, end: float) -> float | None:
        low, high = self._cpu_at(start), self._cpu_at(end)
        if low is None or high is None:
            return None
        return max(0.0, high - low)

    def cpu_percent_between(self, start: float, end: float) -> float | None:
        """Average CPU use in ``[start, end]``, in percent of one core."""
        used = self.cpu_seconds_between(start, end)
        if used is None or end <= start:
            return None
        return round(100.0 * used / (end - start), 1)

    def machine_cpu_percent_between(self, start: float, end: float) -> float | None:
        """How busy the whole machine was in ``[start, end]`` (all processes, % of all
        cores): near 100 means everything, server and clients alike, competed for CPU."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2:
            return None
        total = inside[-1].machine_total_seconds - inside[0].machine_total_seconds
        busy = inside[-1].machine_busy_seconds - inside[0].machine_busy_seconds
        return round(100.0 * busy / total, 1) if total > 0 else None

    def peak_rss_between(self, start: float, end: float) -> int | None:
        inside = [s.rss_bytes for s in self.samples if start <= s.at <= end]
        return max(inside) if inside else None

    @property
    def first_rss(self) -> int | None:
        return self.samples[0].rss_bytes if self.samples else None
