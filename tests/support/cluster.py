"""Real twinstream processes (and nginx) for the scale-out tests, and clients
that follow one stream across them the way a well-behaved client would:
when a response ends without a terminal event, or a socket closes, reconnect
to the next address and resume after the last event seen.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from benchmarks.clients import Endpoint, HTTPStatusError, SSEConnection


class ServerProc:
    """``python -m server`` as a subprocess; its stderr goes to a temp file."""

    def __init__(self, *args: str, port: int = 0) -> None:
        self.args = args
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix="twinstream-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "serving on" not in line:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.stderr()}")
        self.url = line.split()[-1].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as file:
            return file.read()

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()
        os.unlink(self.log.name)


@dataclass
class Followed:
    """One stream as a client saw it, across reconnects."""

    events: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0
    hosts: set[str] = field(default_factory=set)

    @property
    def stream(self) -> str:
        return str(self.events[0]["stream"])

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]

    @property
    def seqs(self) -> list[int]:
        return [int(e["seq"]) for e in self.events]

    @property
    def text(self) -> str:
        return "".join(e["content"] for e in self.events if e["type"] == "delta")

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1]["type"] in ("done", "error")


async def follow_sse(
    urls: list[str],
    prompt: str,
    max_tokens: int,
    first: int = 0,
    record: Followed | None = None,
    deadline: float = 60.0,
) -> Followed:
    """Start over SSE on ``urls[first]``; whenever the response ends early or the
    connection breaks, resume with ``Last-Event-ID`` on the next address."""
    record = record or Followed()
    give_up = time.monotonic() + deadline
    index = first
    last_id = f"{record.stream}:{record.seqs[-1]}" if record.events else None
    while not record.ended:
        if time.monotonic() > give_up:
            raise TimeoutError(f"stream not finished: {record.seqs[-3:]}")
        url = urls[index % len(urls)]
        connection = SSEConnection(Endpoint(url + "/"))
        try:
            path = f"/sse?prompt={quote(prompt)}&max_tokens={max_tokens}"
            async for event_id, data in connection.events(
                path if last_id is None else "/sse", last_event_id=last_id
            ):
                record.events.append(json.loads(data))
                record.hosts.add(url)
                last_id = event_id
        except (OSError, asyncio.IncompleteReadError) as exc:
            if last_id is None and not isinstance(exc, ConnectionRefusedError):
                raise
        except HTTPStatusError as exc:
            if exc.status != 503:
                raise
        finally:
            await connection.close()
        if not record.ended:
            record.reconnects += 1
            index += 1
            await asyncio.sleep(0.02)
    return record


async def follow_ws(
    urls: list[str],
    prompt: str,
    max_tokens: int,
    first: int = 0,
    record: Followed | None = None,
    deadline: float = 60.0,
    close_codes: list[int] | None = None,
) -> Followed:
    """Start over WebSocket on ``urls[first]``; whenever the socket closes before
    the terminal event, reconnect to the next address and send ``resume``."""
    record = record or Followed()
    give_up = time.monotonic() + deadline
    index = first
    while not record.ended:
        if time.monotonic() > give_up:
            raise TimeoutError(f"stream not finished: {record.seqs[-3:]}")
        url = urls[index % len(urls)]
        try:
            async with ws_connect(
                url.replace("http://", "ws://") + "/ws", ping_interval=None, close_timeout=2
            ) as socket:
                if record.events:
                    message = {"type": "resume", "stream": record.stream, "after": record.seqs[-1]}
                else:
                    message = {"type": "start", "prompt": prompt, "max_tokens": max_tokens}
                await socket.send(json.dumps(message))
                try:
                    async for text in socket:
                        event = json.loads(text)
                        if event.get("seq") is None:
                            raise AssertionError(f"unexpected error event {event}")
                        record.events.append(event)
                        record.hosts.add(url)
                        if record.ended:
                            break
                except ConnectionClosed as closed:
                    if close_codes is not None and closed.rcvd is not None:
                        close_codes.append(closed.rcvd.code)
        except OSError:
            if not record.events and index - first > 20:
                raise
        if not record.ended:
            record.reconnects += 1
            index += 1
            await asyncio.sleep(0.02)
    return record
