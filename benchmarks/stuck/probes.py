"""What the server holds for one client connection, read from its side: the
process's connection table (psutil) and the kernel's unsent queue (/proc/net/tcp).

Both look from outside, so the stuck reader never has to read to learn them.
"""

from __future__ import annotations

from collections.abc import Iterable

import psutil

__all__ = ["holds_connection", "kernel_queue", "tx_queue_in"]

TCP_TABLE = "/proc/net/tcp"


def holds_connection(process: psutil.Process, server_port: int, client_port: int) -> bool:
    """Whether the server process still has the socket of ``client_port``'s connection."""
    for connection in process.net_connections(kind="tcp"):
        if (
            connection.laddr
            and connection.raddr
            and connection.laddr.port == server_port
            and connection.raddr.port == client_port
        ):
            return True
    return False


def tx_queue_in(rows: Iterable[str], server_port: int, client_port: int) -> int | None:
    """The ``tx_queue`` of the server's side of the connection in /proc/net/tcp's
    ``rows`` (its header line skipped already), or None when it is not there."""
    for line in rows:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (
            int(local.split(":")[1], 16) == server_port
            and int(remote.split(":")[1], 16) == client_port
        ):
            return int(fields[4].split(":")[0], 16)
    return None


def kernel_queue(server_port: int, client_port: int) -> int | None:
    """Bytes the kernel holds unsent on the server's side of the connection (/proc/net/tcp
    tx_queue), or None when the socket is gone."""
    try:
        with open(TCP_TABLE, encoding="ascii") as table:
            next(table)
            return tx_queue_in(table, server_port, client_port)
    except OSError:
        return None
