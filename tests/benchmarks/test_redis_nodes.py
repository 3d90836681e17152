"""benchmarks.redis_nodes against real redis-server nodes: one server and a six-node
Redis Cluster answer the same questions (url, pids, flush, calls) and leave nothing
behind."""

from __future__ import annotations

import os

import pytest
import redis
import redis.cluster

from benchmarks.redis_nodes import RedisClusterProcess, RedisProcess, start_store


def test_a_cluster_of_three_masters_and_three_replicas() -> None:
    cluster = RedisClusterProcess().start()
    try:
        assert cluster.url.startswith("redis-cluster://127.0.0.1:")
        assert cluster.url.count(",") == 5
        masters = cluster.master_ports()
        assert len(masters) == 3 and set(masters) <= {n.port for n in cluster.nodes}
        assert len(cluster.pids()) == 6
        assert set(cluster.master_pids()) < set(cluster.pids())
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
        try:
            for key in ("a", "b", "c", "d", "e", "f"):
                client.set(key, "1")
            assert client.dbsize(target_nodes="primaries") == 6  # summed over the masters
            cluster.flush()
            assert client.dbsize(target_nodes="primaries") == 0
            client.set("g", "1")
            client.set("h", "1")
        finally:
            client.close()
        # the masters' counters, zeroed by the flush, summed
        assert cluster.calls()["set"] == 2
    finally:
        cluster.stop()
    assert not any(node.alive for node in cluster.nodes)
    assert not any(os.path.exists(node.dir) for node in cluster.nodes)


def test_one_server_answers_the_same() -> None:
    server = start_store("redis")
    try:
        assert isinstance(server, RedisProcess)
        assert server.pids() == server.master_pids() == [server.process.pid]
        client = redis.Redis.from_url(server.url)
        client.set("a", "1")
        server.flush()
        client.set("b", "1")
        assert client.dbsize() == 1 and server.calls()["set"] == 1
        client.close()
    finally:
        server.stop()
    with pytest.raises(ValueError, match="unknown store 'memcached'"):
        start_store("memcached")


def test_a_cluster_that_does_not_settle_says_what_it_waited_for_and_which_node_exited() -> None:
    # a short node timeout (as the tests' clusters have): still well past the wait below
    cluster = RedisClusterProcess(node_timeout_ms=2000).start()
    try:
        master = next(n for n in cluster.nodes if n.port in cluster.master_ports())
        assert master.process is not None
        master.process.kill()
        master.process.wait()
        # before its replica can take over, the cluster is not whole
        with pytest.raises(RuntimeError) as failed:
            cluster.wait_ok(timeout=0.5)
        message = str(failed.value)
        assert "did not reach cluster_state:ok in 0.5 s: still waiting for" in message
        assert f"node {master.port} exited, its log ending: " in message
    finally:
        cluster.close()
