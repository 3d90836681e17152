"""The Redis a benchmark part keeps twinstream's streams in: one Debian
``redis-server``, or a Redis Cluster of six.

:class:`RedisProcess` is one ``redis-server`` on a free loopback port;
:class:`RedisClusterProcess` six of them (three masters, three replicas) joined with
``redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes``, each in its own
temporary directory, nothing persisted. The tests' cluster (``tests/support/
redis_cluster.py``) is this one with the means to break it (kill, freeze, move a slot).
Both answer :class:`RedisNodes`: a store URL, the pids whose CPU counts, a flush
between runs and the commands served since.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import redis

__all__ = [
    "wait_for_pong",
    "RedisNodes",
    "RedisProcess",
    "RedisClusterProcess",
    "ClusterNode",
    "STORES",
    "free_port",
    "redis_cli",
    "start_store",
    "redis_version",
]

_Cluster = TypeVar("_Cluster", bound="RedisClusterProcess")

#: the stores the parts run twinstream on besides memory (``--store`` of capacity)
STORES = ("redis", "redis-cluster")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisNodes(Protocol):
    """Where a part keeps streams: one redis-server or a cluster of them."""

    @property
    def url(self) -> str: ...

    def pids(self) -> list[int]:
        """The redis-server processes whose CPU the store costs."""
        ...

    def master_pids(self) -> list[int]:
        """Those of them that are masters (the work a replica-less Redis would do)."""
        ...

    def flush(self) -> None: ...

    def calls(self) -> dict[str, int]: ...

    def stop(self) -> None: ...


class RedisProcess:
    """Debian's redis-server on a free loopback port, no persistence, a temp dir."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="twinstream-bench-redis-")
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_pong(self.port, self.process)
        except RuntimeError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pids(self) -> list[int]:
        return [self.process.pid]

    def master_pids(self) -> list[int]:
        return self.pids()

    def flush(self) -> None:
        """Empty it and zero its command counters."""
        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.config_resetstat()
        client.close()

    def calls(self) -> dict[str, int]:
        """Commands served since :meth:`flush`, by name."""
        client = redis.Redis.from_url(self.url, decode_responses=True)
        stats = client.info("commandstats")
        client.close()
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_cli(port: int, *command: str, timeout: float = 2.0) -> str:
    """One command to one node through redis-cli (its reply as text)."""
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout


@dataclass
class ClusterNode:
    port: int
    bus_port: int  # the cluster bus (given: the default, port + 10000, may be taken or too high)
    dir: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class RedisClusterProcess:
    """A Redis Cluster of ``2 * masters`` Debian redis-server nodes on free loopback
    ports: ``masters`` masters, one replica each. ``node_timeout_ms`` is how long a
    master may be silent before its replica takes over: Redis's own default (15 s) for
    a benchmark, whose saturated machine may starve a node for a second; the tests'
    failovers want it short. A replica may always take over
    (``cluster-replica-validity-factor 0``)."""

    def __init__(self, masters: int = 3, node_timeout_ms: int = 15000) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError(
                "redis-server is not installed: bash scripts/test.sh installs Debian's redis-server"
            )
        self.node_timeout_ms = node_timeout_ms
        self.masters = masters
        self.nodes = self._new_nodes()

    def _new_nodes(self) -> list[ClusterNode]:
        return [
            ClusterNode(free_port(), free_port(), tempfile.mkdtemp(prefix="twinstream-cluster-"))
            for _ in range(self.masters * 2)
        ]

    @property
    def url(self) -> str:
        """``redis-cluster://`` with every node (any one would do: the rest are discovered)."""
        return "redis-cluster://" + ",".join(node.address for node in self.nodes)

    @property
    def seed_url(self) -> str:
        return f"redis-cluster://{self.nodes[0].address}"

    def _launch(self, node: ClusterNode) -> None:
        # fmt: off
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
                "--logfile", f"{node.dir}/redis.log",  # why a node exited, if one does
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # fmt: on

    def start(self: _Cluster) -> _Cluster:
        """Launch the nodes and join them; a cluster that does not settle (every node
        ``cluster_state:ok``, the masters agreed, the replicas in sync) within
        :meth:`wait_ok`'s time is made once more, on new ports, before giving up."""
        try:
            return self._create()
        except RuntimeError as first:
            self.close()
            self.nodes = self._new_nodes()
            try:
                return self._create()
            except RuntimeError as second:
                self.close()
                raise RuntimeError(f"{second} (and on a first try: {first})") from None

    def _create(self: _Cluster) -> _Cluster:
        for node in self.nodes:
            self._launch(node)
        for node in self.nodes:
            _wait_pong(node)
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}")
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on the masters."""
        deadline = time.monotonic() + timeout
        waiting_for = "an answer"
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.alive]
            try:
                not_ok = [
                    n.port
                    for n in live
                    if "cluster_state:ok" not in redis_cli(n.port, "CLUSTER", "INFO")
                ]
                masters = self.master_ports()
                if not_ok:
                    waiting_for = f"cluster_state:ok on ports {not_ok}"
                elif len(masters) != self.masters:
                    waiting_for = f"{self.masters} masters (seen: {masters})"
                elif not self._replicas_synced(live):
                    waiting_for = "the replicas' sync"
                else:
                    return
            except subprocess.TimeoutExpired:
                waiting_for = "an answer (redis-cli timed out)"
            time.sleep(0.1)
        dead = [n for n in self.nodes if not n.alive]
        raise RuntimeError(
            f"the cluster did not reach cluster_state:ok in {timeout:g} s: still waiting for "
            f"{waiting_for}"
            + "".join(f"; node {n.port} exited, its log ending: {_log_tail(n)}" for n in dead)
        )

    def _replicas_synced(self, live: list[ClusterNode]) -> bool:
        """Every live replica has its master's data (a failover would lose it otherwise)."""
        for node in live:
            info = redis_cli(node.port, "INFO", "replication")
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
            if "role:slave" in info and "master_sync_in_progress:1" in info:
                return False
        return True

    def master_ports(self) -> list[int]:
        """The ports of the masters that serve slots, as a live node sees them."""
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                text = redis_cli(node.port, "CLUSTER", "NODES")
            except subprocess.TimeoutExpired:
                continue
            ports = []
            for line in text.splitlines():
                fields = line.split()
                if len(fields) > 8 and "master" in fields[2] and "fail" not in fields[2]:
                    ports.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
            return sorted(ports)
        return []

    def node(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def pids(self) -> list[int]:
        """Every node, replicas included: replication is part of what the cluster costs."""
        return [n.process.pid for n in self.nodes if n.process is not None and n.alive]

    def master_pids(self) -> list[int]:
        masters = self.master_ports()
        return [n.process.pid for n in self.nodes if n.process is not None and n.port in masters]

    def flush(self) -> None:
        """Empty every master (replicas follow) and zero every node's command counters."""
        for port in self.master_ports():
            redis_cli(port, "FLUSHALL", timeout=30)
        for node in self.nodes:
            if node.alive:
                redis_cli(node.port, "CONFIG", "RESETSTAT")

    def calls(self) -> dict[str, int]:
        """Commands the masters served since :meth:`flush`, by name, summed."""
        total: dict[str, int] = {}
        for port in self.master_ports():
            client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
            try:
                stats = client.info("commandstats")
            finally:
                client.close()
            for name, value in stats.items():
                key = name.removeprefix("cmdstat_")
                total[key] = total.get(key, 0) + int(value["calls"])
        return total

    def close(self) -> None:
        for node in self.nodes:
            if node.alive:
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)  # a frozen node dies too
                node.process.kill()
                node.process.wait(10)
            shutil.rmtree(node.dir, ignore_errors=True)

    stop = close


def _log_tail(node: ClusterNode, lines: int = 5) -> str:
    try:
        text = Path(node.dir, "redis.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty)"


def wait_for_pong(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until the redis-server on ``port`` answers PING (10 s); RuntimeError if it
    exits or does not answer by then."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.02)


def _wait_pong(node: ClusterNode) -> None:
    assert node.process is not None
    wait_for_pong(node.port, node.process)


def start_store(store: str) -> RedisNodes:
    """The Redis a part's ``store`` (one of :data:`STORES`) needs, started."""
    if store == "redis":
        return RedisProcess()
    if store == "redis-cluster":
        return RedisClusterProcess().start()
    raise ValueError(f"unknown store {store!r}; choose from {', '.join(STORES)}")


def redis_version() -> str:
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except OSError:
        return "?"
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip()
