"""Shared fixtures: a real server on a free loopback port, two ways.

* ``app`` / ``http_server_client`` (pytest-tornasync): the server runs in the
  test's own IOLoop; the test is ``async def`` and uses async clients.
* ``live_server``: the server runs in a background thread with its own event
  loop, for blocking clients (websocket-client, our sync clients, browsers).
  Every connection is closed at teardown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import tornado.httpserver
import tornado.ioloop
import tornado.testing
import tornado.web
from support.live import LiveServer, StepBackend
from support.redisutil import RedisServer

from server.app import Settings, http_server_options, make_app
from server.core.store import MemoryStreamStore
from server.edge.server import make_server


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


@pytest.fixture
def http_server(
    request: pytest.FixtureRequest,
    io_loop: tornado.ioloop.IOLoop,
    http_server_port: tuple[object, int],
    app: tornado.web.Application,
    settings: Settings,
) -> Iterator[tornado.httpserver.HTTPServer]:
    """pytest-tornasync's ``http_server``, as ``python -m server`` makes it: its
    options (a larger header limit for long prompts in URLs) and the edge."""
    server = make_server(app, http_server_options(settings))
    server.add_socket(http_server_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=10)


@pytest.fixture
def live_settings() -> Settings:
    """Settings for ``live_server``; override in a module to change them."""
    return Settings(tokens_per_second=0, ws_ping_interval=0)


@pytest.fixture
def live_server(live_settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(dataclasses.replace(live_settings)).start()
    yield server
    server.stop()


@pytest.fixture
def step_backend() -> StepBackend:
    return StepBackend()


@pytest.fixture
def step_app(
    step_backend: StepBackend, io_loop: tornado.ioloop.IOLoop
) -> Iterator[tornado.web.Application]:
    """The application over a :class:`StepBackend`; use as ``app`` with
    ``@pytest.fixture def app(step_app): return step_app``."""
    application = make_app(
        Settings(ws_ping_interval=0),
        store=MemoryStreamStore.from_settings(step_backend, Settings()),
    )
    yield application
    io_loop.run_sync(application.settings["store"].close, timeout=10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped at teardown."""
    server = RedisServer().start()
    yield server
    server.close()
