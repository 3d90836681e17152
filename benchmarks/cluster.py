"""twinstream scaled out: a redis-server beside it, a store and a process count on its
command line, and the worker processes that serve (the scaleout and churn parts)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

import psutil
import redis

from .config import SuiteConfig
from .servers import TWINSTREAM, ServerProcess

__all__ = ["RedisProcess", "redis_version", "store_server_command", "worker_pids"]


class RedisProcess:
    """Debian's redis-server on a free loopback port, no persistence, a temp dir."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.dir = tempfile.mkdtemp(prefix="twinstream-bench-redis-")
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        """Empty it and zero its command counters."""
        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.config_resetstat()
        client.close()

    def calls(self) -> dict[str, int]:
        """Commands served since :meth:`flush`, by name."""
        client = redis.Redis.from_url(self.url, decode_responses=True)
        stats = client.info("commandstats")
        client.close()
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def store_server_command(config: SuiteConfig, store: str, processes: int) -> list[str]:
    """The suite's twinstream command line, with a store and a process count."""
    return TWINSTREAM.command(config.tokens_per_second, config.first_token_latency) + [
        "--store",
        store,
        "--processes",
        str(processes),
    ]


def worker_pids(server: ServerProcess, processes: int) -> list[int]:
    """The processes that serve: the server itself, or its forked workers."""
    assert server.pid is not None
    if processes == 1:
        return [server.pid]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(server.pid).children()
        if len(children) >= processes:
            return [child.pid for child in children]
        time.sleep(0.05)
    raise RuntimeError("the server's worker processes did not start")


def redis_version() -> str:
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except OSError:
        return "?"
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip()
