"""Plain endpoints: health, the demo page, 404s."""

from __future__ import annotations

import os

from ..core.store import StreamStore
from ..metrics import Metrics
from ..wire import errors
from .base import JsonErrorHandler

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static")


class HealthHandler(JsonErrorHandler):
    def initialize(self, metrics: Metrics, store: StreamStore) -> None:
        self.metrics = metrics
        self.store = store

    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.write({"status": "ok", "streams": len(self.store)})


class IndexHandler(JsonErrorHandler):
    """The browser demo (``server/static/index.html``)."""

    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        with open(os.path.join(STATIC_DIR, "index.html"), "rb") as page:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.write(page.read())


class NotFoundHandler(JsonErrorHandler):
    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def prepare(self) -> None:
        raise errors.ProtocolError("not_found", f"no such endpoint: {self.request.path[:200]}", 404)
