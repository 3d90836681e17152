"""Servers and backends the fixtures hand to tests: a live server in a thread of its own,
and a backend that releases tokens only when a test says so."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import tornado.httpserver
import tornado.testing
import tornado.web

from server.app import Settings, http_server_options, make_app
from server.backends.base import ChatRequest, Finish
from server.edge.server import make_server


class LiveServer:
    """A server in its own thread and event loop. ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self.port = 0
        self.app: tornado.web.Application | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("live server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            sock, port = tornado.testing.bind_unused_port()
            self.app = make_app(self.settings)
            self._server = make_server(self.app, http_server_options(self.settings))
            self._server.add_sockets([sock])
            self.port = port
            self.url = f"http://127.0.0.1:{port}"

        try:
            loop.run_until_complete(boot())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def call(self, fn, *args):  # type: ignore[no-untyped-def]
        """Run ``fn(*args)`` on the server's loop and return its result (blocking)."""
        assert self._loop is not None

        async def run():  # type: ignore[no-untyped-def]
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    @property
    def store(self):  # type: ignore[no-untyped-def]
        assert self.app is not None
        return self.app.settings["store"]

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        server = self._server

        async def shutdown() -> None:
            server.stop()
            await self.store.close()
            await server.close_all_connections()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class StepBackend:
    """A backend the test drives: each ``release(piece)`` lets one piece out;
    ``finish()`` ends the completion. It proves that every event leaves the
    server as soon as it exists: a test releases one piece and must receive
    it before releasing the next, so any buffering stalls the test."""

    model = "step-model"

    def __init__(self) -> None:
        self._pieces: asyncio.Queue[str | None] = asyncio.Queue()

    def release(self, piece: str) -> None:
        self._pieces.put_nowait(piece)

    def finish(self) -> None:
        self._pieces.put_nowait(None)

    async def generate(self, request: ChatRequest) -> AsyncIterator[str | Finish]:
        while (piece := await self._pieces.get()) is not None:
            yield piece
        yield Finish(reason="stop")
