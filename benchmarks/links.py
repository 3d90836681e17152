"""Network profiles, and the kernel-shaped link the network part runs them over.

A :class:`Profile` is a named link: round-trip time, jitter and stalls (applied by
the suite's own proxy, :class:`~benchmarks.proxy.Impairment`) and a bandwidth cap
(applied by the kernel). :class:`ShapedLink` builds the cap: two network namespaces
of the suite's own (client side, server side) joined by a veth pair with a private
/30 between them, and a ``tbf`` (token bucket filter) queueing discipline on each
end's egress. Nothing outside those namespaces is touched; deleting them removes the
link. It needs root, ``ip`` and ``tc`` with ``tbf`` (``netem`` is not needed).
:func:`shaping_unavailable` says why not, when it cannot be built.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import psutil

from .proxy import Impairment

__all__ = [
    "Profile",
    "PROFILES",
    "ShapedLink",
    "shaping_unavailable",
    "link_bytes",
    "remove_stale_links",
]


@dataclass(frozen=True)
class Profile:
    """A named link. Rates in bit/s (``None``: not capped); times in seconds."""

    name: str
    rtt: float
    down_bps: int | None = None
    up_bps: int | None = None
    jitter: float = 0.0
    stall_every: float = 0.0
    stall_for: float = 0.0
    #: concurrent 30 tokens/s streams sharing the link in the keep-up run
    shared_streams: int = 1
    note: str = ""

    @property
    def impairment(self) -> Impairment:
        return Impairment(
            rtt=self.rtt,
            jitter=self.jitter,
            stall_every=self.stall_every,
            stall_for=self.stall_for,
        )

    @property
    def capped(self) -> bool:
        return self.down_bps is not None

    def describe(self) -> str:
        parts = [f"{self.rtt * 1000:.0f} ms RTT"]
        if self.jitter:
            parts.append(f"+0–{self.jitter * 1000:.0f} ms jitter each way")
        if self.down_bps:
            parts.append(f"{_rate(self.down_bps)} down / {_rate(self.up_bps or self.down_bps)} up")
        if self.stall_every and self.stall_for:
            parts.append(f"a {self.stall_for * 1000:.0f} ms stall every ~{self.stall_every:.0f} s")
        return ", ".join(parts)


def _rate(bps: int) -> str:
    return f"{bps / 1e6:g} Mbit/s" if bps >= 1_000_000 else f"{bps / 1e3:g} kbit/s"


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("loopback", rtt=0.0, note="no delay, no cap: the baseline"),
        Profile("broadband", rtt=0.020, jitter=0.002, down_bps=50_000_000, up_bps=10_000_000),
        Profile(
            "4g",
            rtt=0.060,
            jitter=0.010,
            down_bps=10_000_000,
            up_bps=5_000_000,
            shared_streams=4,
        ),
        Profile(
            "3g",
            rtt=0.150,
            jitter=0.020,
            down_bps=1_500_000,
            up_bps=750_000,
            stall_every=4.0,
            stall_for=0.3,
            shared_streams=6,
        ),
        Profile(
            "poor",
            rtt=0.400,
            jitter=0.050,
            down_bps=200_000,
            up_bps=100_000,
            stall_every=3.0,
            stall_for=0.8,
            shared_streams=6,
        ),
    )
}

_SERIAL = itertools.count()


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=20)


def _tbf(bps: int) -> list[str]:
    # burst: at least a few full-size frames, or 10 ms at the rate; queue bound: 250 ms
    # of the rate (beyond it tbf drops, and TCP retransmits -- real loss from congestion)
    burst = max(4 * 1514, bps // 8 // 100)
    limit = max(burst + 2 * 1514, bps // 8 // 4)
    return ["tbf", "rate", f"{bps}bit", "burst", str(burst), "limit", str(limit)]


def shaping_unavailable() -> str | None:
    """``None`` when a shaped link can be built here, else why not (one sentence)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "bandwidth not shaped: network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"bandwidth not shaped: `{tool}` (iproute2) is not installed"
    try:
        with ShapedLink(Profile("probe", rtt=0, down_bps=1_000_000, up_bps=1_000_000)):
            pass
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        return f"bandwidth not shaped: could not build a tbf link in a namespace ({exc})"
    return None


class ShapedLink:
    """Two namespaces of our own, a veth pair between them, ``tbf`` on each egress.

    ``client_ns`` / ``server_ns`` name the namespaces; ``server_address`` is the
    server side's address. Use as a context manager: the namespaces (and with them
    the link) are deleted on exit."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        remove_stale_links()
        # tsb<pid>x<serial>c|s: whose they are, so a crashed run's can be told apart
        tag = f"tsb{os.getpid()}x{next(_SERIAL) % 100}"
        self.client_ns = self._client_if = f"{tag}c"
        self.server_ns = self._server_if = f"{tag}s"
        # a private /30 inside our own namespaces: nothing else can see or route it
        self.client_address = "10.231.0.1"
        self.server_address = "10.231.0.2"

    def __enter__(self) -> ShapedLink:
        try:
            self._build()
        except subprocess.CalledProcessError as exc:
            self.close()
            raise RuntimeError((exc.stderr or str(exc)).strip().splitlines()[-1]) from None
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _build(self) -> None:
        c, s = self.client_ns, self.server_ns
        _run("ip", "netns", "add", c)
        _run("ip", "netns", "add", s)
        _run("ip", "-n", c, "link", "set", "lo", "up")
        _run("ip", "-n", s, "link", "set", "lo", "up")
        _run(
            "ip", "-n", c, "link", "add", self._client_if, "type", "veth",
            "peer", "name", self._server_if, "netns", s,
        )  # fmt: skip
        _run("ip", "-n", c, "addr", "add", f"{self.client_address}/30", "dev", self._client_if)
        _run("ip", "-n", s, "addr", "add", f"{self.server_address}/30", "dev", self._server_if)
        _run("ip", "-n", c, "link", "set", self._client_if, "up")
        _run("ip", "-n", s, "link", "set", self._server_if, "up")
        if self.profile.down_bps:
            _run(
                "tc", "-n", s, "qdisc", "add", "dev", self._server_if, "root",
                *_tbf(self.profile.down_bps),
            )  # fmt: skip
        up = self.profile.up_bps or self.profile.down_bps
        if up:
            _run("tc", "-n", c, "qdisc", "add", "dev", self._client_if, "root", *_tbf(up))

    def close(self) -> None:
        for namespace in (self.client_ns, self.server_ns):
            _run("ip", "netns", "del", namespace, check=False)

    def in_client(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.client_ns, *command]

    def in_server(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.server_ns, *command]

    def server_interface(self) -> str:
        return self._server_if


_OURS = re.compile(r"^tsb(\d+)x\d+[cs]$")


def remove_stale_links() -> list[str]:
    """Delete namespaces this suite left behind in a run that died (named after a
    process that no longer exists); returns their names."""
    listed = _run("ip", "netns", "list", check=False).stdout
    stale = []
    for line in listed.splitlines():
        name = line.split(" ", 1)[0]
        match = _OURS.match(name)
        if match and not psutil.pid_exists(int(match.group(1))):
            _run("ip", "netns", "del", name, check=False)
            stale.append(name)
    return stale


def link_bytes(namespace: str, interface: str) -> dict[str, int]:
    """The root qdisc's counters on ``interface`` (bytes and packets the link sent,
    link-layer headers included, and drops)."""
    shown = _run("tc", "-n", namespace, "-s", "-j", "qdisc", "show", "dev", interface)
    data: list[dict[str, Any]] = json.loads(shown.stdout or "[]")
    root = next((q for q in data if q.get("root")), {})
    return {k: int(root.get(k, 0)) for k in ("bytes", "packets", "drops")}
