"""``GET /metrics``."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..metrics import Metrics
from .base import JsonErrorHandler


class MetricsHandler(JsonErrorHandler):
    """``GET /metrics``: the Prometheus text format. With API keys configured
    it needs one (the edge checks), unless ``--public-metrics``."""

    metrics: Metrics

    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.write(self.metrics.exposition())
