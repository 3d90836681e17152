"""A real Redis Cluster for tests: six Debian ``redis-server`` nodes on free
loopback ports (three masters, three replicas), joined with ``redis-cli
--cluster create ... --cluster-replicas 1 --cluster-yes`` -- the benchmarks'
launcher (:class:`benchmarks.cluster.RedisClusterProcess`), with the means to
break it.

Nothing is persisted; each node works in its own temporary directory. The
node timeout is short (``node_timeout_ms``) so that a master killed with
:meth:`RedisCluster.kill` is replaced by its replica in a few seconds, and a
replica may always take over (``cluster-replica-validity-factor 0``), as a
test that stops a replica first needs. :meth:`freeze`/:meth:`thaw` stop and
resume a node (SIGSTOP/SIGCONT).
"""

from __future__ import annotations

import signal

import redis.cluster

from benchmarks.redis_nodes import ClusterNode, RedisClusterProcess, redis_cli

Node = ClusterNode  # the name the tests knew it by


class RedisCluster(RedisClusterProcess):
    def __init__(self, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        super().__init__(masters, node_timeout_ms)

    def node_of_key(self, key: str) -> int:
        """The port of the master that holds ``key`` now (asked of the cluster afresh)."""
        live = next(n for n in self.nodes if n.process is not None and n.process.poll() is None)
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=live.port)
        try:
            return int(client.get_node_from_key(key).port)
        finally:
            client.close()

    def replica_of(self, master_port: int) -> int:
        """The port of a replica of the master on ``master_port``."""
        text = redis_cli(master_port, "CLUSTER", "NODES")
        lines = [line.split() for line in text.splitlines() if line.strip()]
        me = next(fields[0] for fields in lines if "myself" in fields[2])
        for fields in lines:
            if "slave" in fields[2] and fields[3] == me:
                return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no replica of {master_port}")

    def node_id(self, port: int) -> str:
        return redis_cli(port, "CLUSTER", "MYID").strip()

    def move_slot(self, key: str, to_port: int) -> None:
        """Move the hash slot of ``key`` (and its keys) to the master on
        ``to_port``, live, as ``redis-cli --cluster reshard`` does: IMPORTING /
        MIGRATING, MIGRATE the keys, then SETSLOT NODE on every master."""
        source = self.node_of_key(key)
        slot = redis_cli(source, "CLUSTER", "KEYSLOT", key).strip()
        source_id, target_id = self.node_id(source), self.node_id(to_port)
        redis_cli(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        redis_cli(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while True:
            keys = redis_cli(source, "CLUSTER", "GETKEYSINSLOT", slot, "100").split()
            if not keys:
                break
            redis_cli(source, "MIGRATE", "127.0.0.1", str(to_port), "", "0", "5000", "KEYS", *keys)
        for port in self.master_ports():
            redis_cli(port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def cut_replication(self, master_port: int) -> None:
        """Close the master's links to its replicas (a frozen replica then
        misses every write that follows: the tail a failover loses)."""
        redis_cli(master_port, "CLIENT", "KILL", "TYPE", "replica")

    def keys_on(self, port: int, pattern: str) -> list[str]:
        return [k for k in redis_cli(port, "--scan", "--pattern", pattern).split() if k]

    def kill(self, port: int) -> None:
        """SIGKILL one node (its replica takes over after the node timeout)."""
        node = self.node(port)
        if node.process is not None:
            node.process.kill()
            node.process.wait(10)

    def freeze(self, port: int) -> None:
        node = self.node(port)
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        node = self.node(port)
        assert node.process is not None
        node.process.send_signal(signal.SIGCONT)
