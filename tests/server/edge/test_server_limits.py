"""Limits that hold at the edge, against ``python -m server`` with a lowered
``ulimit -n``: slowloris sockets, and accept() failing with EMFILE.

Timing is asserted only where the issue makes it the contract (``/healthz``
within 100 ms); CPU is compared to a bound over an interval, not raced.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator

import psutil
import pytest
from support.server_process import ServerProcess

SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture(autouse=True)
def enough_descriptors_for_the_test() -> Iterator[None]:
    """This process opens 2,000+ sockets of its own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 8192:
        try:  # root (CI) may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, 8192))
            hard = 8192
        except (ValueError, OSError):
            pass
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if wanted < 4096:
        pytest.fail(f"the test needs 4096 open files (hard limit {hard}); raise ulimit -Hn")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_slow_sockets(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send part of a request line and then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        sockets.append(sock)
    deadline = time.monotonic() + 20
    pending = list(sockets)
    while pending and time.monotonic() < deadline:
        still = []
        for sock in pending:
            try:
                sock.send(SLOW_HEAD)
            except (BlockingIOError, OSError):
                still.append(sock)
        pending = still
        if pending:
            time.sleep(0.05)
    return sockets


def healthz_ms(port: int) -> float:
    """A fresh connection's GET /healthz, start to full answer, in ms."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    elapsed = (time.perf_counter() - started) * 1000
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
    return elapsed


def cpu_share(pid: int, seconds: float) -> float:
    """Share of one core the process used over ``seconds``."""
    process = psutil.Process(pid)
    before = process.cpu_times()
    time.sleep(seconds)
    after = process.cpu_times()
    return (after.user + after.system - before.user - before.system) / seconds


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def test_slowloris_2000_sockets_against_ulimit_1024() -> None:
    with ServerProcess("--tokens-per-second", "0", nofile=1024) as server:
        slow = open_slow_sockets(server.port, 2000)
        try:
            time.sleep(2.0)  # let the server take in the whole flood
            probes = sorted(healthz_ms(server.port) for _ in range(5))
            # The median within 100 ms; none stuck in the backlog (the bug: a
            # connect that waits for a free descriptor, i.e. seconds). One slow
            # probe on a busy CI machine is the scheduler, not the server.
            assert probes[2] < 100, f"/healthz took {probes} ms"
            assert probes[-1] < 1000, f"/healthz took {probes} ms"
            share = cpu_share(server.pid, 2.0)
            assert share < 0.10, f"the server used {share:.0%} of a core while idle"
            assert psutil.Process(server.pid).num_fds() <= 1024
            # Room was made by closing the sockets that waited longest for headers.
            status, _, body = server.request("GET", "/metrics")
            assert status == 200
            metrics = {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in body.decode().splitlines()
                if line and not line.startswith("#")
            }
            assert metrics['twinstream_refused_connections_total{reason="evicted_idle"}'] > 500
            assert metrics["twinstream_tcp_connections"] <= 1024
        finally:
            close_all(slow)
        assert "Traceback" not in server.logs()


def test_header_timeout_closes_slow_sockets() -> None:
    with ServerProcess("--idle-connection-timeout", "1") as server:
        slow = open_slow_sockets(server.port, 20)
        try:
            time.sleep(2.0)
            closed = 0
            for sock in slow:
                sock.setblocking(True)
                sock.settimeout(2)
                try:
                    closed += sock.recv(1) == b""
                except ConnectionResetError:
                    closed += 1
            assert closed == 20
        finally:
            close_all(slow)


def test_at_the_descriptor_limit_it_refuses_backs_off_and_keeps_serving() -> None:
    # The connection cap is set above what the descriptors allow, so accept()
    # itself fails with EMFILE.
    with ServerProcess(
        "--max-connections", "5000", "--tokens-per-second", "0", nofile=64
    ) as server:
        kept = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        kept_file = kept.makefile("rb")
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

        def ask_on_kept() -> bytes:
            kept.sendall(request)
            status = kept_file.readline()
            length = 0
            while (line := kept_file.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            kept_file.read(length)
            return status

        assert ask_on_kept().startswith(b"HTTP/1.1 200")
        flood = open_slow_sockets(server.port, 200)
        try:
            time.sleep(1.0)
            share = cpu_share(server.pid, 2.0)
            assert share < 0.10, f"the server used {share:.0%} of a core at the fd limit"
            assert ask_on_kept().startswith(b"HTTP/1.1 200")  # open connections are served
            # Clients beyond the limit are told (503) or closed, not left hanging.
            late = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            late.sendall(request)
            answer = late.recv(4096)
            late.close()
            assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer[:100]
        finally:
            close_all(flood)
            kept_file.close()
            kept.close()
        logs = server.logs()
        assert "Traceback" not in logs
        reports = logs.count("accept() failed (EMFILE)")
        assert 1 <= reports <= 2, logs[-2000:]  # once per 10 s interval
