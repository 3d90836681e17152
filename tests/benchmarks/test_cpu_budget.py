"""benchmarks.cpu_budget: the quota, where cgroups are made, and a real process held
to its budget by the kernel."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from benchmarks.cpu_budget import PERIOD_US, BudgetUnavailable, CpuBudget, cgroup_root, quota_us


def test_the_quota_is_the_cores_share_of_a_short_period() -> None:
    assert PERIOD_US == 10_000
    assert quota_us(0.4) == 4_000
    assert quota_us(2) == 20_000  # more than one core: a process with threads
    assert quota_us(0.01) == 1_000  # the kernel's least
    with pytest.raises(ValueError, match="above 0 cores"):
        quota_us(0)


def test_either_hierarchy_is_found_and_none_is_a_clear_error(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_root(v1) == (v1 / "cpu", 1)
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    assert cgroup_root(v2) == (v2, 2)
    (v2 / "cgroup.subtree_control").write_text("memory pids\n")  # cpu not delegated
    with pytest.raises(BudgetUnavailable, match="no cgroup CPU controller"):
        cgroup_root(v2)


def test_a_busy_process_gets_its_budget_and_no_more() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with CpuBudget(0.2) as budget:
            group = budget.limit(busy.pid)
            assert str(busy.pid) in (group / "cgroup.procs").read_text().split()
            process = psutil.Process(busy.pid)
            before, began = process.cpu_times(), time.monotonic()
            time.sleep(1.0)
            after, wall = process.cpu_times(), time.monotonic() - began
            used = (after.user + after.system) - (before.user + before.system)
            # a fifth of a core over the second, give or take a period: never a whole core
            assert used < 0.4 * wall, (used, wall)
            assert budget.throttled_seconds() > 0
        assert not group.exists()  # moved back to the root and removed
    finally:
        busy.kill()
        busy.wait()
