"""A CPU budget per server process: each process measured is put in a cgroup of its
own whose CPU quota is ``cores`` cores, so that on a small machine a server cannot
take the CPU the load generator and Redis need, and two processes of one server
get twice one process's CPU, as they would on a machine with a core each.

Linux's CFS bandwidth control does the limiting: in every period a cgroup may run
for its quota, then waits for the next period. The period here is 10 ms (the
kernel's default is 100 ms): a process that spent its quota waits at most that
long, so the budget caps the CPU without adding a tenth of a second to a stream's
delivery delay. Either cgroup hierarchy works: version 1's ``cpu`` controller
(``cpu.cfs_quota_us``, ``cpu.cfs_period_us``) or version 2's ``cpu.max``. Making
cgroups needs root.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["PERIOD_US", "BudgetUnavailable", "CpuBudget", "cgroup_root", "quota_us"]

#: CFS period (µs): the longest a process that spent its quota waits to run again
PERIOD_US = 10_000
#: where the cgroup hierarchies are mounted
CGROUP_MOUNT = Path("/sys/fs/cgroup")


class BudgetUnavailable(RuntimeError):
    """No writable cgroup CPU controller here."""


def quota_us(cores: float, period_us: int = PERIOD_US) -> int:
    """The quota per period that gives ``cores`` cores (at least the kernel's 1 ms)."""
    if cores <= 0:
        raise ValueError(f"a CPU budget must be above 0 cores, not {cores}")
    return max(1000, round(cores * period_us))


def cgroup_root(mount: Path = CGROUP_MOUNT) -> tuple[Path, int]:
    """Where new cgroups with a CPU controller are made, and the hierarchy's version:
    version 1's ``cpu`` controller if mounted, else the unified (version 2) one when
    it delegates ``cpu`` to its children."""
    for v1 in (mount / "cpu", mount / "cpu,cpuacct"):
        if (v1 / "cpu.cfs_quota_us").exists():
            return v1, 1
    for v2 in (mount, mount / "unified"):
        controls = v2 / "cgroup.subtree_control"
        if controls.exists() and "cpu" in controls.read_text().split():
            return v2, 2
    raise BudgetUnavailable(
        f"no cgroup CPU controller under {mount} (a CPU budget per server process needs "
        "Linux cgroups with the cpu controller, and root to make them)"
    )


class CpuBudget:
    """``cores`` cores for each process given to :meth:`limit`, each in a cgroup of
    its own; :meth:`close` (or leaving the ``with`` block) removes them. A process
    that has exited leaves its cgroup empty; one still running is moved back to
    the root first."""

    def __init__(self, cores: float, mount: Path = CGROUP_MOUNT) -> None:
        self.cores = cores
        self._quota = quota_us(cores)
        self._root, self._version = cgroup_root(mount)
        self._made: list[Path] = []

    def __enter__(self) -> CpuBudget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def limit(self, pid: int) -> Path:
        """Put process ``pid`` (all its threads) in a new cgroup holding it to the budget."""
        group = self._root / f"twinstream-bench-{os.getpid()}-{len(self._made)}"
        try:
            group.mkdir()
        except OSError as exc:
            raise BudgetUnavailable(f"cannot make cgroup {group}: {exc} (needs root)") from exc
        self._made.append(group)
        if self._version == 1:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(self._quota))
        else:
            (group / "cpu.max").write_text(f"{self._quota} {PERIOD_US}")
        (group / "cgroup.procs").write_text(str(pid))
        return group

    def throttled_seconds(self) -> float:
        """How long the kernel held this budget's processes back, summed."""
        total_ns = 0
        for group in self._made:
            with contextlib.suppress(OSError):
                for line in (group / "cpu.stat").read_text().splitlines():
                    name, _, value = line.partition(" ")
                    if name == "throttled_time":  # version 1: ns
                        total_ns += int(value)
                    elif name == "throttled_usec":  # version 2: µs
                        total_ns += int(value) * 1000
        return total_ns / 1e9

    def close(self) -> None:
        while self._made:
            group = self._made.pop()
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self._root / "cgroup.procs").write_text(pid)
                group.rmdir()
