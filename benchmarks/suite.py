"""Running the suite: the parts a run names, each with what it includes, into
``results.json``, then ``report.md``."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from .config import PRESETS, SuiteConfig
from .parts import RunContext, included_context, inclusions, part_named, run_part
from .report.document import write_report

__all__ = ["RESULTS_ROOT", "machine_info", "configured", "run_suite"]

RESULTS_ROOT = Path(__file__).resolve().parent / "results"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _node_version() -> str:
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    """The checkout's commit (``?`` outside a git checkout)."""
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info() -> dict[str, Any]:
    return {
        "commit": _commit(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in (
                "tornado",
                "websockets",
                "sse-starlette",
                "uvicorn",
                "starlette",
                "psutil",
                "uvloop",
            )
        },
        "node": _node_version(),
    }


def write_json(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def configured(
    preset: str,
    workers: int | None = None,
    tokens_per_second: float | None = None,
    profiles: Sequence[str] | None = None,
    rounds: int | None = None,
    loads: Sequence[str] | None = None,
    loops: Sequence[str] | None = None,
    store: str | None = None,
) -> SuiteConfig:
    """``preset``'s configuration with the command line's overrides."""
    config = PRESETS[preset]
    if workers is not None:
        config = config.replace(workers=workers)
    if tokens_per_second is not None:
        config = config.replace(tokens_per_second=tokens_per_second)
    if profiles:
        config = config.replace(
            network_profiles=tuple(profiles), conversation_profiles=tuple(profiles)
        )
    if rounds is not None:
        config = config.replace(head_to_head_rounds=rounds)
    if loads:
        config = config.replace(head_to_head_loads=tuple(loads))
    if loops:
        config = config.replace(head_to_head_loops=tuple(loops), capacity_loops=tuple(loops))
    if store:
        config = config.replace(store=store)
    return config


def resumed(
    out: Path, parts: Sequence[str], config: SuiteConfig, command: str, started: dt.datetime
) -> tuple[dict[str, Any], list[str]]:
    """The results of the run in ``out`` and the parts of ``parts`` it has not done yet.
    Its meta records the resumption: when, the command, the parts, and every setting
    that differs from the run's own (ValueError: nothing to resume there, or a
    different preset)."""
    path = out / "results.json"
    if not path.is_file():
        raise ValueError(f"nothing to resume: {path} does not exist")
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    meta = results["meta"]
    before = meta.get("config", {})
    now = json.loads(json.dumps(config.as_dict()))  # tuples as the saved run's lists
    if before.get("name") != now.get("name"):
        raise ValueError(
            f"{out} is a {before.get('name')!r} run; resume it with --preset {before.get('name')}"
        )
    done = set(meta.get("part_seconds", {}))
    left = [name for name in parts if name not in done]
    meta.setdefault("resumptions", []).append(
        {
            "started": started.strftime("%Y-%m-%d %H:%M:%S"),
            "command": command,
            "parts": left,
            "changed_settings": {
                key: {"was": before.get(key), "now": value}
                for key, value in now.items()
                if before.get(key) != value
            },
            "commit": _commit(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    )
    return results, left


def run_suite(
    parts: Sequence[str],
    preset: str = "full",
    out: Path | None = None,
    url: str | None = None,
    workers: int | None = None,
    tokens_per_second: float | None = None,
    progress: bool = True,
    command: str = "",
    profiles: Sequence[str] | None = None,
    rounds: int | None = None,
    loads: Sequence[str] | None = None,
    loops: Sequence[str] | None = None,
    store: str | None = None,
    resume: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Run ``parts`` and write results.json, report.md and plots; returns (results, out).
    ``resume``: ``out`` holds a run that stopped part way; run only the parts it lacks."""
    config = configured(preset, workers, tokens_per_second, profiles, rounds, loads, loops, store)
    started = dt.datetime.now(dt.timezone.utc)
    if out is None:
        out = RESULTS_ROOT / f"{started:%Y%m%d-%H%M%S}-{preset}"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "meta": {
            **machine_info(),
            "command": command,
            "started": started.strftime("%Y-%m-%d %H:%M:%S"),
            "parts": list(parts),
            "url": url,
            "config": config.as_dict(),
        }
    }
    part_seconds: dict[str, float] = {}
    if resume:
        results, parts = resumed(out, parts, config, command, started)
        part_seconds = results["meta"]["part_seconds"]
    began = time.monotonic() - results["meta"].get("duration_s", 0.0)
    results["meta"]["part_seconds"] = part_seconds
    context = RunContext(config, url=url, progress=progress)
    for name in parts:
        part_began = time.monotonic()
        if progress:
            print(f"== {name}", file=sys.stderr, flush=True)
        run_part(part_named(name), context, results)
        for inclusion in inclusions(preset, name, list(parts), url):
            run_part(part_named(inclusion.part), included_context(context, inclusion), results)
        part_seconds[name] = round(time.monotonic() - part_began, 1)
        results["meta"]["duration_s"] = round(time.monotonic() - began, 1)
        write_json(results, out)  # after every part, so a failure keeps what was done
    results["meta"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(results, out)
    write_report(results, out)
    return results, out
