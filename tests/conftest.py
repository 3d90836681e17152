"""Shared fixtures: a real server on a free loopback port, two ways.

* ``app`` / ``http_server_client`` (pytest-tornasync): the server runs in the
  test's own IOLoop; the test is ``async def`` and uses async clients.
* ``live_server``: the server runs in a background thread with its own event
  loop, for blocking clients (websocket-client, our sync clients, browsers).
  Every connection is closed at teardown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator

import pytest
import tornado.httpserver
import tornado.ioloop
import tornado.testing
import tornado.web

from server.app import Settings, make_app


@pytest.fixture
def settings() -> Settings:
    """Fast, deterministic defaults; override this fixture in a module to change them."""
    return Settings(tokens_per_second=0, heartbeat=15.0, ws_ping_interval=0)


@pytest.fixture
def app(settings: Settings, io_loop: tornado.ioloop.IOLoop) -> Iterator[tornado.web.Application]:
    """The application under test; its live streams are cancelled at teardown."""
    application = make_app(settings)
    yield application
    io_loop.run_sync(application.settings["store"].close, timeout=10)


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
            self._server = tornado.httpserver.HTTPServer(self.app)
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


@pytest.fixture
def live_settings() -> Settings:
    """Settings for ``live_server``; override in a module to change them."""
    return Settings(tokens_per_second=0, ws_ping_interval=0)


@pytest.fixture
def live_server(live_settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(dataclasses.replace(live_settings)).start()
    yield server
    server.stop()
