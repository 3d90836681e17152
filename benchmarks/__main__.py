"""``python -m benchmarks``: run the SSE-vs-WebSocket benchmark suite.

Examples::

    python -m benchmarks --quick               # everything, in under three minutes
    python -m benchmarks                       # the full suite (1,000-stream sweep)
    python -m benchmarks latency reconnect     # some parts only
    python -m benchmarks --url http://127.0.0.1:8888/ latency   # an already running server
    python -m benchmarks report benchmarks/results/2026-...      # rebuild report.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from .config import PRESETS, SERVER_DEFAULTS
from .links import PROFILES
from .parts import part_named, part_names
from .redis_nodes import STORES
from .servers import LOOPS
from .suite import machine_info, run_suite
from .targets import LOADS

__all__ = ["main", "build_parser", "run_suite", "machine_info"]

EXAMPLES = """\
  python -m benchmarks --quick                # everything, in under three minutes
  python -m benchmarks                        # the full suite (1,000-stream sweep)
  python -m benchmarks latency reconnect      # some parts only
  python -m benchmarks connections stuck      # issue 8's bounds: idle connections, stuck readers
  python -m benchmarks headtohead             # issue 8's targets: all four servers, in rounds
  python -m benchmarks headtohead --loads throughput --rounds 40   # CPU per event, precisely
  python -m benchmarks --url http://127.0.0.1:8888/ latency    # a running server
  python -m benchmarks report benchmarks/results/RUN           # rebuild report.md
  python -m benchmarks network --profiles 3g,poor              # some link profiles
  python -m benchmarks readme benchmarks/results/RUN           # README table + samples
  python -m benchmarks readme RUN SCALEOUT_RUN                 # ... + the scale-out table
  python -m benchmarks readme RUN SCALEOUT_RUN ROUNDS_RUN      # ... + a headtohead run's
  python -m benchmarks pool RUN1 RUN2 ...      # issue 8's targets over several runs' rounds
  python -m benchmarks protocols capacity http2 conversation   # issue 25's parts
  python -m benchmarks capacity --store redis --loops asyncio  # + twinstream on Redis, x1 and x2
  python -m benchmarks capacity --store redis-cluster          # + on a Redis Cluster, x1 and x2
  python -m benchmarks headtohead --loops asyncio,uvloop       # what uvloop buys each server
"""
#: the parts a run without part names runs
DEFAULT_PARTS = part_names("default")
#: parts that also run inside others with the full preset (throughput: twinstream;
#: peers: the reference servers, then headtohead: all four in interleaved rounds), so
#: ``latency throughput peers`` includes them
EXTRA_PARTS = part_names("extra")
#: parts run only when named (they need more than the default run: scaleout needs redis-server)
OPTIONAL_PARTS = part_names("optional")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmark twinstream's two transports side by side -- Server-Sent Events and "
            "WebSocket -- for latency, throughput and reconnection, plus the same "
            "workloads against reference servers (sse-starlette on uvicorn, the "
            "websockets library, a Node.js server: node:http and ws). Servers are started as "
            "subprocesses on free loopback "
            "ports; client load runs in separate processes. Writes results.json, "
            "report.md and PNG plots to --out."
        ),
        epilog=(
            "Parts: latency (time to first token cold/warm, inter-token gaps, delivery "
            "delay, at 1 and many streams); throughput (concurrency sweep, server CPU/RSS, "
            "memory per stream, one unthrottled stream, wire bytes per token); reconnect "
            "(streams cut by either side and resumed: recovery time, events lost and "
            "duplicated); peers (latency and throughput against the reference servers); "
            "network (cold start, delivery delay, keep-up and bytes per token through "
            "link profiles: loopback, broadband, 4g, 3g, poor; the bandwidth cap is the "
            "kernel's tbf in network namespaces the suite creates, as root); browser "
            "(headless Chromium: EventSource vs WebSocket reconnect, seven streams from "
            "one origin, browser CPU per 1,000 events); churn (clients cut at random for "
            "minutes: delivery %, duplicates, replay delay); protocols (every protocol view: "
            "bytes per token plain and compressed, server CPU per token at 1,000 streams, "
            "first token cold and warm); capacity (streams at 30 tokens/s raised until the p99 "
            "delay passes 100 ms or under 99 % arrive: streams per core, every server, each "
            "Python one on each --loops loop; --store redis adds twinstream on Redis, one process "
            "and two, --store redis-cluster on a six-node Redis Cluster); http2 (nginx "
            "with TLS, HTTP/1.1 vs HTTP/2, in Chromium: 7/20/50 "
            "EventSources and streams on one WebSocket); conversation (20 turns, each waiting "
            "for the answer, per view, through the link profiles). "
            "Three more run inside throughput and peers with the full preset, and alone "
            "when named: connections (server memory per idle open connection at 10,000 "
            "connections; raises the file-descriptor limit), stuck (a client per "
            "transport that never reads, next to 50 normal ones: time until the server "
            "drops it, extra memory, resume, others' p99 delay) and headtohead (inside "
            "peers: the throughput, latency and unthrottled measures for twinstream and "
            "both reference servers in interleaved rounds on fresh servers, medians "
            "compared against issue 8's targets; --loads and --rounds choose its loads "
            "and how many rounds). scaleout (memory vs Redis store vs Redis Cluster, 1 vs 2 "
            "processes, at 500 and 1,000 streams with the full preset; then, full preset only, "
            "the capacity search on one Redis with one process and two, each held to 0.4 of "
            "a core by a cgroup CPU quota: what a second process carries; needs redis-server "
            "and root) "
            "runs only when named. "
            "'report DIR' rebuilds report.md and plots from DIR/results.json; "
            "'readme [DIR ...]' rewrites README.md's benchmark table and samples from a "
            "suite run DIR (default: the newest full run) and a server it starts, and its "
            "scale-out table from a scaleout run DIR and its rounds table from a "
            "headtohead run DIR if given; 'pool DIR [DIR ...]' judges issue 8's targets "
            "over the head-to-head rounds of several runs."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.description = textwrap.fill(parser.description or "", 88)
    parser.epilog = textwrap.fill(parser.epilog or "", 88) + "\n\nExamples:\n" + EXAMPLES
    parser.add_argument(
        "parts",
        nargs="*",
        metavar="PART",
        help=f"parts to run: {', '.join(DEFAULT_PARTS + EXTRA_PARTS)} (default: the first eleven, "
        f"which include the last two with the full preset), {', '.join(OPTIONAL_PARTS)} "
        "(only when named), 'report DIR', 'readme [DIR ...]' or 'pool DIR [DIR ...]'",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_const",
        dest="preset",
        const="quick",
        help="a smaller run (100 streams, fewer samples, the 3g profile, the browser "
        "reconnect only, HTTP/2 with 7 streams, one capacity point per server, a short "
        "churn): under three minutes",
    )
    size.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="full",
        help="run size: tiny (tests), quick, full (default: full)",
    )
    parser.set_defaults(preset="full")
    parser.add_argument(
        "--url",
        help="measure an already running twinstream at this URL instead of starting one "
        "(latency, throughput and reconnect; server CPU/RSS and the unthrottled stream "
        "need a server the suite starts itself; pass the server's pace as --tokens-per-second "
        "so offered rates are right)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default: a new timestamped folder under benchmarks/results/)",
    )
    parser.add_argument("--workers", type=int, help="client load processes (default: 2)")
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        help="the synthetic model's pace for every server "
        f"(default: {SERVER_DEFAULTS.tokens_per_second:g})",
    )
    parser.add_argument(
        "--profiles",
        help="network profiles to run, comma-separated (default: the preset's; "
        f"choose from {', '.join(PROFILES)})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="head-to-head rounds (default: the preset's, 8 with the full preset); more "
        "rounds narrow the verdicts' intervals, about as one over the square root",
    )
    parser.add_argument(
        "--loads",
        help="head-to-head loads each round runs, comma-separated (default: all; choose "
        "from throughput, latency, unthrottled); a round runs only the contenders the "
        "chosen loads' targets compare, so 'throughput' drops sse-starlette",
    )
    parser.add_argument(
        "--loops",
        help="event loops for the Python servers in headtohead and capacity, comma-separated "
        "(default: the preset's: asyncio and uvloop with the full preset; choose from "
        f"{', '.join(LOOPS)})",
    )
    parser.add_argument(
        "--store",
        choices=STORES,
        help="capacity also runs twinstream with one process and two on a Redis store (redis: "
        "a redis-server the suite starts; redis-cluster: a six-node Redis Cluster it starts)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="--out names a run that stopped part way (a part failed, the machine went "
        "down): run only the parts its results.json lacks, into it; its meta records the "
        "resumption, with every setting that differs from the run's own",
    )
    return parser


def _report_command(parser: argparse.ArgumentParser, folders: list[str]) -> int:
    from .report.document import write_report

    if len(folders) != 1:
        parser.error("usage: python -m benchmarks report DIR")
    folder = Path(folders[0])
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    print(write_report(results, folder))
    return 0


def _pool_command(parser: argparse.ArgumentParser, folders: list[str]) -> int:
    from .report.headtohead import pooled_table

    if not folders:
        parser.error("usage: python -m benchmarks pool DIR [DIR ...]")
    runs = []
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            parser.error(f"{path}: no such file (give the --out folders of full runs)")
        runs.append((folder, json.loads(path.read_text(encoding="utf-8"))))
    try:
        print(pooled_table(runs))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


def _readme_command(parser: argparse.ArgumentParser, folders: list[str]) -> int:
    from .readme import sort_runs, update_readme

    try:
        suite, scaleout, rounds = sort_runs([Path(folder) for folder in folders])
    except ValueError as exc:
        parser.error(str(exc))
    print(update_readme(suite, scaleout_run=scaleout, rounds_run=rounds))
    return 0


COMMANDS = {"report": _report_command, "pool": _pool_command, "readme": _readme_command}


def _listed(text: str | None) -> list[str]:
    """A comma-separated option's items."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _check_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, parts: list[str]
) -> None:
    """parser.error() for options or parts the suite cannot run."""
    bad = [p for p in _listed(args.profiles) if p not in PROFILES]
    if bad:
        parser.error(f"unknown profile(s) {', '.join(bad)}; choose from {', '.join(PROFILES)}")
    loads = _listed(args.loads)
    bad = [load for load in loads if load not in LOADS]
    if bad or (args.loads is not None and not loads):
        parser.error(
            f"unknown head-to-head load(s) {', '.join(bad) or repr(args.loads)}; "
            f"choose from {', '.join(LOADS)}"
        )
    bad = [loop for loop in _listed(args.loops) if loop not in LOOPS]
    if bad:
        parser.error(f"unknown event loop(s) {', '.join(bad)}; choose from {', '.join(LOOPS)}")
    if args.rounds is not None and args.rounds < 2:
        parser.error(
            f"--rounds must be at least 2, not {args.rounds}: a median of one round is one sample"
        )
    if args.resume and (args.out is None or not (args.out / "results.json").is_file()):
        parser.error("--resume needs --out DIR naming a run that stopped (DIR/results.json)")
    known = DEFAULT_PARTS + EXTRA_PARTS + OPTIONAL_PARTS
    unknown = [p for p in parts if p not in known]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.url and set(parts) & set(EXTRA_PARTS):
        parser.error("connections, stuck and headtohead start servers of their own; drop --url")
    if (
        args.url
        and parts
        and all(part_named(p).kind == "default" and not part_named(p).takes_url for p in parts)
    ):
        parser.error(
            "--url applies to latency, throughput and reconnect; the other parts start "
            "their own servers"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    parts = list(args.parts)
    if parts and parts[0] in COMMANDS:
        return COMMANDS[parts[0]](parser, parts[1:])
    _check_options(parser, args, parts)
    command = "python -m benchmarks " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    results, out = run_suite(
        parts or list(DEFAULT_PARTS),
        preset=args.preset,
        out=args.out,
        url=args.url,
        workers=args.workers,
        tokens_per_second=args.tokens_per_second,
        progress=not args.no_progress,
        command=command.strip(),
        profiles=_listed(args.profiles) or None,
        rounds=args.rounds,
        loads=_listed(args.loads) or None,
        loops=_listed(args.loops) or None,
        store=args.store,
        resume=args.resume,
    )
    print(f"results: {out / 'results.json'}\nreport:  {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
