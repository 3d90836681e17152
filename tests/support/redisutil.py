"""A real ``redis-server`` (Debian's package) on a free loopback port, for tests.

Nothing is persisted unless asked (``persistent=True``: an append-only file,
fsynced at every write, as a Redis that must survive a restart is run); the
working directory is a temporary one, so the tree stays clean.
:meth:`RedisServer.stop` and :meth:`start` let a test take Redis away and bring
it back on the same port mid-test.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks.redis_nodes import wait_for_pong


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, persistent: bool = False) -> None:
        self.persistent = persistent
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "redis-server is not installed: bash scripts/test.sh installs Debian's redis-server"
            )
        self.executable = executable
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="twinstream-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "yes" if self.persistent else "no",
                "--appendfsync", "always",
                "--dir", self.dir,
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_pong(self.port, self.process)
        return self

    def stop(self) -> None:
        """Stop Redis at once (SIGKILL: every client sees its connection drop)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_with_store(
    redis_server: RedisServer,
    test: Callable[[Any], Coroutine[Any, Any, None]],
    *,
    prefix: str,
    tokens_per_second: float,
) -> None:
    """``await test(store)`` on a connected Redis store of ``redis_server`` (keys
    under ``prefix``; the synthetic model at ``tokens_per_second``), closed after."""
    from server.backends.synthetic import SyntheticBackend
    from server.config import Settings
    from server.store.redis import RedisStreamStore

    settings = Settings(
        store=redis_server.url,
        retention=30.0,
        tokens_per_second=tokens_per_second,
        first_token_latency=0,
    )

    async def run() -> None:
        store = RedisStreamStore.from_settings(
            SyntheticBackend.from_settings(settings), settings, prefix=prefix
        )
        await store.connect()
        try:
            await test(store)
        finally:
            await store.close()

    asyncio.run(run())
