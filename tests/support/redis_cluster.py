"""A real Redis Cluster for tests: six Debian ``redis-server`` nodes on free
loopback ports (three masters, three replicas), joined with ``redis-cli
--cluster create ... --cluster-replicas 1 --cluster-yes``.

Nothing is persisted; each node works in its own temporary directory. The
node timeout is short (``node_timeout_ms``) so that a master killed with
:meth:`RedisCluster.kill` is replaced by its replica in a few seconds, and a
replica may always take over (``cluster-replica-validity-factor 0``), as a
test that stops a replica first needs. :meth:`freeze`/:meth:`thaw` stop and
resume a node (SIGSTOP/SIGCONT).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import redis.cluster
from support.redisutil import free_port


@dataclass
class Node:
    port: int
    bus_port: int  # the cluster bus (given: the default, port + 10000, may be taken or too high)
    dir: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _ask(port: int, *command: str, timeout: float = 2.0) -> str:
    """One command to one node through redis-cli (its reply as text)."""
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout


class RedisCluster:
    def __init__(self, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError(
                "redis-server is not installed: bash scripts/test.sh installs Debian's redis-server"
            )
        self.node_timeout_ms = node_timeout_ms
        self.nodes = [
            Node(free_port(), free_port(), tempfile.mkdtemp(prefix="twinstream-cluster-"))
            for _ in range(masters * 2)
        ]
        self.masters = masters

    @property
    def url(self) -> str:
        """``redis-cluster://`` with every node (any one would do: the rest are discovered)."""
        return "redis-cluster://" + ",".join(node.address for node in self.nodes)

    @property
    def seed_url(self) -> str:
        return f"redis-cluster://{self.nodes[0].address}"

    def _launch(self, node: Node) -> None:
        node.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(node.port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-port", str(node.bus_port),
                "--cluster-config-file", f"{node.dir}/nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-replica-validity-factor", "0",
                "--save", "",
                "--repl-diskless-sync-delay", "0",
                "--appendonly", "no",
                "--dir", node.dir,
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> RedisCluster:
        for node in self.nodes:
            self._launch(node)
        for node in self.nodes:
            _wait_pong(node)
        created = subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            self.close()
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}")
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on 3 masters."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
            try:
                if all("cluster_state:ok" in _ask(n.port, "CLUSTER", "INFO") for n in live):
                    if len(self.master_ports()) == self.masters and self._replicas_synced(live):
                        return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def _replicas_synced(self, live: list[Node]) -> bool:
        """Every live replica has its master's data (a failover would lose it otherwise)."""
        for node in live:
            info = _ask(node.port, "INFO", "replication")
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
            if "role:slave" in info and "master_sync_in_progress:1" in info:
                return False
        return True

    def master_ports(self) -> list[int]:
        """The ports of the masters that serve slots, as a live node sees them."""
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            try:
                text = _ask(node.port, "CLUSTER", "NODES")
            except subprocess.TimeoutExpired:
                continue
            ports = []
            for line in text.splitlines():
                fields = line.split()
                if len(fields) > 8 and "master" in fields[2] and "fail" not in fields[2]:
                    ports.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
            return sorted(ports)
        return []

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
        text = _ask(master_port, "CLUSTER", "NODES")
        lines = [line.split() for line in text.splitlines() if line.strip()]
        me = next(fields[0] for fields in lines if "myself" in fields[2])
        for fields in lines:
            if "slave" in fields[2] and fields[3] == me:
                return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no replica of {master_port}")

    def node_id(self, port: int) -> str:
        return _ask(port, "CLUSTER", "MYID").strip()

    def move_slot(self, key: str, to_port: int) -> None:
        """Move the hash slot of ``key`` (and its keys) to the master on
        ``to_port``, live, as ``redis-cli --cluster reshard`` does: IMPORTING /
        MIGRATING, MIGRATE the keys, then SETSLOT NODE on every master."""
        source = self.node_of_key(key)
        slot = _ask(source, "CLUSTER", "KEYSLOT", key).strip()
        source_id, target_id = self.node_id(source), self.node_id(to_port)
        _ask(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        _ask(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while True:
            keys = _ask(source, "CLUSTER", "GETKEYSINSLOT", slot, "100").split()
            if not keys:
                break
            _ask(source, "MIGRATE", "127.0.0.1", str(to_port), "", "0", "5000", "KEYS", *keys)
        for port in self.master_ports():
            _ask(port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def cut_replication(self, master_port: int) -> None:
        """Close the master's links to its replicas (a frozen replica then
        misses every write that follows: the tail a failover loses)."""
        _ask(master_port, "CLIENT", "KILL", "TYPE", "replica")

    def keys_on(self, port: int, pattern: str) -> list[str]:
        return [k for k in _ask(port, "--scan", "--pattern", pattern).split() if k]

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

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

    def close(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
                node.process.kill()
                node.process.wait(10)
            shutil.rmtree(node.dir, ignore_errors=True)


def _wait_pong(node: Node) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", node.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        assert node.process is not None
        if node.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {node.port}")
        time.sleep(0.02)
