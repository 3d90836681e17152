"""deploy/nginx.conf, run by Debian's nginx in front of two twinstream processes
sharing a real redis-server: SSE, WebSocket (with the origin check) and /v1
through the proxy, and streams resumed on the other backend when one drains."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from support.cluster import Followed, ServerProc, follow_sse, follow_ws
from support.redisutil import RedisServer, free_port
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from server.backends.synthetic import synthetic_tokens

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        raise RuntimeError("nginx is not installed: bash scripts/test.sh installs Debian's nginx")
    return found


class Nginx:
    """deploy/nginx.conf with its ports and paths moved to free loopback ones."""

    def __init__(self, backends: list[int]) -> None:
        self.dir = tempfile.mkdtemp(prefix="twinstream-nginx-")
        self.port = free_port()
        text = CONFIG.read_text(encoding="utf-8")
        temp = "".join(
            f"    {name}_temp_path {self.dir}/{name};\n"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        replacements = {
            "worker_processes auto;": "worker_processes 1;",
            "pid /run/nginx-twinstream.pid;": f"pid {self.dir}/nginx.pid;",
            "listen 8080;": f"listen 127.0.0.1:{self.port};",
            "server 127.0.0.1:8001 ": f"server 127.0.0.1:{backends[0]} ",
            "server 127.0.0.1:8002 ": f"server 127.0.0.1:{backends[1]} ",
            "http {\n": "http {\n" + temp,
        }
        for old, new in replacements.items():
            assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r}"
            text = text.replace(old, new)
        self.config = Path(self.dir) / "nginx.conf"
        self.config.write_text(text, encoding="utf-8")
        self.process = subprocess.Popen(
            [
                nginx_binary(),
                "-e",
                "stderr",
                "-p",
                self.dir,
                "-c",
                str(self.config),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.process.stderr}") from None
                time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster(redis_server: RedisServer) -> Iterator[tuple[Nginx, ServerProc, ServerProc]]:
    pace = ("--tokens-per-second", "20", "--first-token-latency", "0", "--retry-ms", "50")
    a = ServerProc("--store", redis_server.url, "--log-level", "warning", *pace)
    b = ServerProc("--store", redis_server.url, "--log-level", "warning", *pace)
    proxy = Nginx([a.port, b.port])
    yield proxy, a, b
    proxy.close()
    a.close()
    b.close()


def expected(prompt: str, max_tokens: int) -> str:
    return "".join(synthetic_tokens(prompt)[:max_tokens])


def assert_exact(record: Followed, prompt: str, max_tokens: int) -> None:
    assert record.seqs == list(range(len(record.events))), record.seqs
    assert record.last["type"] == "done", record.last
    assert record.text == expected(prompt, max_tokens)


async def test_sse_ws_and_v1_through_nginx(cluster: tuple[Nginx, ServerProc, ServerProc]) -> None:
    proxy, _, _ = cluster
    record = await follow_sse([proxy.url], "through nginx", 12)
    assert_exact(record, "through nginx", 12)
    assert record.reconnects == 0
    # WebSocket: a page served by the proxy's origin passes the origin check
    # (nginx passes the browser's Host); another origin is refused.
    origin = proxy.url
    async with ws_connect(proxy.url.replace("http", "ws") + "/ws", origin=origin) as socket:  # type: ignore[arg-type]
        await socket.send('{"type":"start","prompt":"ws through nginx","max_tokens":8}')
        texts = [await socket.recv() for _ in range(10)]
    assert '"type":"done"' in str(texts[-1])
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            proxy.url.replace("http", "ws") + "/ws",
            origin="http://evil.example",  # type: ignore[arg-type]
        ):
            pass
    assert refused.value.response.status_code == 403
    # The OpenAI SDK, streaming through the proxy.
    client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused")
    pieces = []
    async for chunk in await client.chat.completions.create(
        model="any",
        stream=True,
        max_tokens=10,
        messages=[{"role": "user", "content": "v1 through nginx"}],
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    await client.close()
    assert "".join(pieces) == expected("v1 through nginx", 10)


async def test_streams_resume_on_the_other_backend_when_one_drains(
    cluster: tuple[Nginx, ServerProc, ServerProc],
) -> None:
    proxy, a, b = cluster
    prompts = [f"behind nginx {i}" for i in range(8)]
    tasks = [
        asyncio.ensure_future((follow_sse if i % 2 else follow_ws)([proxy.url], prompt, 40))
        for i, prompt in enumerate(prompts)
    ]
    await asyncio.sleep(0.7)  # nginx spread them over both backends; all mid-stream
    a.terminate()  # drain A: its readers come back through nginx and land on B
    records = await asyncio.gather(*tasks)
    assert a.wait(30) == 0
    for prompt, record in zip(prompts, records):
        assert_exact(record, prompt, 40)
    assert any(record.reconnects for record in records), "no stream was on the drained backend"
    assert b.process.poll() is None
