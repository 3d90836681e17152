"""A real Redis Cluster (six Debian redis-server nodes: three masters, three
replicas) for the cluster tests, shared by the tests that do not break it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.redis_cluster import RedisCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    cluster = RedisCluster().start()
    yield cluster
    cluster.close()


@pytest.fixture
def own_cluster() -> Iterator[RedisCluster]:
    """A cluster of the test's own, for tests that kill or stop its nodes."""
    cluster = RedisCluster().start()
    yield cluster
    cluster.close()


def pytest_configure(config: pytest.Config) -> None:
    # pytest-tornasync's per-test limit (its --async-test-timeout is the default)
    config.addinivalue_line("markers", "timeout(seconds): a longer limit for one async test")
