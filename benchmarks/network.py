"""Network profiles: the latency, bytes and keep-up measures through named links.

Loopback is where SSE and WebSocket are most alike; this part runs both (and the
reference servers) through the links of :data:`benchmarks.links.PROFILES` --
``loopback``, ``broadband``, ``4g``, ``3g``, ``poor``:

* the **bandwidth cap** is the kernel's: the server runs in a network namespace of
  the suite's own, joined to the client's namespace by a veth pair with ``tbf`` on
  each egress (:class:`~benchmarks.links.ShapedLink`). Without root, ``ip`` or
  ``tbf`` the cap is skipped and the report says so -- never faked;
* **round-trip time, jitter and stalls** come from the suite's proxy, which holds
  the bytes of each direction (:class:`~benchmarks.proxy.Impairment`).

Measured per profile and variant (twinstream SSE, SSE + gzip when the server offers
``--sse-compression``, WebSocket, WebSocket + permessage-deflate, sse-starlette,
websockets):

* **cold start** -- a new connection per completion, one at a time: time to the
  ``start`` event (where the WebSocket's extra handshake round trip shows) and to
  the first token; delivery delay of every event;
* **keep-up** -- ``shared_streams`` streams at the model's pace sharing the link:
  how fast each one's delivery delay still grows in its second half (``backlog
  growth``: the lowest delay in the stream's last quarter minus the lowest in its
  second quarter, per second between them -- the lowest, so a stall's burst does not
  count as falling behind, and the second half, so the queue filling up at the start
  does not either). The streams keep up when the median stream grows by less than
  0.05 s per s, i.e. is delivered at 95% of its pace or better; the delay they settle
  at is in the keep-up delivery delay;
* **bytes per token** in that run: at the proxy (HTTP/WebSocket payload, headers and
  framing) and on the shaped link itself (``tc``'s byte counter: TCP/IP and
  Ethernet headers and retransmissions included).

Run alone: ``python -m benchmarks network [--quick]``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil
from tqdm import tqdm

from .clients import (
    Endpoint,
    StreamRecord,
    expected_text,
    prompts_with_tokens,
    run_with_deadline,
    sse_completion,
    ws_completion,
)
from .config import SuiteConfig
from .latency import cdf_points
from .links import PROFILES, Profile, ShapedLink, link_bytes, shaping_unavailable
from .proxy import CountingProxy
from .servers import PYTHON_PEERS, REPO_ROOT, TWINSTREAM, ServerProcess, ServerSpec
from .stats import summarize

__all__ = ["Variant", "run_network", "measure_profile", "backlog_growth", "KEEP_UP_GROWTH"]

MS = 1000.0
#: a stream keeps up when its delivery delay grows by less than this per second of
#: stream: it is then delivered at 1 / (1 + growth) >= 95% of its pace
KEEP_UP_GROWTH = 0.05


@dataclass(frozen=True)
class Variant:
    label: str  # e.g. "twinstream ws+deflate"
    server: str
    transport: str
    compression: bool = False


def backlog_growth(record: StreamRecord) -> float | None:
    """Seconds of delivery delay gained per second of stream, over its second half
    (see the module doc); ``None`` for a stream too short to tell."""
    pairs = [
        (t, r - t)
        for k, t, r in zip(record.kinds, record.produced, record.received)
        if k == "delta" and t > 0
    ]
    if len(pairs) < 8:
        return None
    quarter = len(pairs) // 4
    second, last = pairs[quarter : 2 * quarter], pairs[-quarter:]
    span = last[0][0] - second[0][0]
    if span <= 0:
        return None
    return (min(d for _, d in last) - min(d for _, d in second)) / span


async def _completion(
    endpoint: Endpoint, variant: Variant, prompt: str, max_tokens: int
) -> tuple[StreamRecord, str]:
    """One cold completion; returns the record and the compression actually used."""
    if variant.transport == "sse":
        record, connection = await sse_completion(
            endpoint, prompt, max_tokens, compression=variant.compression
        )
        used = connection.content_encoding
        await connection.close()
        return record, used
    record_ws, websocket = await ws_completion(
        endpoint, prompt, max_tokens, compression=variant.compression
    )
    used = ""
    if websocket is not None:
        names = [type(e).__name__.lower() for e in websocket.protocol.extensions]
        used = "permessage-deflate" if any("deflate" in n for n in names) else ""
        await websocket.close()
    return record_ws, used


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def _link_counters(link: dict[str, str] | None) -> dict[str, int] | None:
    if link is None:
        return None
    return link_bytes(link["server_ns"], link["server_if"])


def _difference(after: float | None, before: float | None) -> float | None:
    return after - before if after is not None and before is not None else None


def _rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


@dataclass
class KeepUpRun:
    """What the keep-up run saw: its streams, and the counters read around it."""

    records: list[StreamRecord]
    encodings: set[str]
    began: float  # wall clock
    stalls: int
    bytes_down: int
    bytes_up: int
    link_before: dict[str, int] | None
    link_after: dict[str, int] | None
    server_cpu_seconds: float | None

    def link(self, counter: str) -> int | None:
        """How much a link counter (bytes, packets, drops) grew during the run."""
        if self.link_before is None or self.link_after is None:
            return None
        return self.link_after[counter] - self.link_before[counter]


async def _cold_run(
    variant: Variant, upstream: Endpoint, profile: Profile, config: SuiteConfig
) -> tuple[list[StreamRecord], set[str]]:
    """``network_samples`` cold completions one after another through a proxy."""
    samples = prompts_with_tokens(config.network_samples, config.network_max_tokens, "net")
    cold: list[StreamRecord] = []
    encodings: set[str] = set()
    async with CountingProxy(
        upstream.host, upstream.port, profile.impairment, seed=config.seed
    ) as proxy:
        endpoint = Endpoint(f"http://127.0.0.1:{proxy.port}/")
        for prompt in samples:
            record, used = await _completion(endpoint, variant, prompt, config.network_max_tokens)
            cold.append(record)
            encodings.add(used)
    return cold, encodings


async def _keep_up_run(
    variant: Variant,
    upstream: Endpoint,
    profile: Profile,
    config: SuiteConfig,
    link: dict[str, str] | None,
    server_pid: int | None,
) -> KeepUpRun:
    """The profile's shared streams at once, through a fresh proxy (and byte counters);
    the link counters are read around it: nothing else crosses the link meanwhile."""
    shared = prompts_with_tokens(
        profile.shared_streams, config.network_keepup_tokens, f"net-keepup-{variant.label}"
    )
    async with CountingProxy(
        upstream.host, upstream.port, profile.impairment, seed=config.seed + 1
    ) as proxy:
        endpoint = Endpoint(f"http://127.0.0.1:{proxy.port}/")
        before = _link_counters(link)
        cpu_before = _cpu_seconds(server_pid)
        began = time.time()
        loop_began = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            *(_completion(endpoint, variant, p, config.network_keepup_tokens) for p in shared)
        )
        await asyncio.sleep(0.05)
        after = _link_counters(link)
        cpu_after = _cpu_seconds(server_pid)
        loop_ended = asyncio.get_running_loop().time()
        stalls = proxy.stalls.stalls_between(loop_began, loop_ended) if proxy.stalls else 0
        bytes_down, bytes_up = proxy.bytes_down, proxy.bytes_up
    return KeepUpRun(
        records=[r for r, _ in results],
        encodings={u for _, u in results},
        began=began,
        stalls=stalls,
        bytes_down=bytes_down,
        bytes_up=bytes_up,
        link_before=before,
        link_after=after,
        server_cpu_seconds=_difference(cpu_after, cpu_before),
    )


def _cold_figures(cold: list[StreamRecord]) -> dict[str, Any]:
    return {
        "samples": len(cold),
        "time_to_start_ms": summarize(
            [v for r in cold if (v := r.time_to_first("start")) is not None], MS
        ),
        "ttft_ms": summarize([v for r in cold if (v := r.time_to_first("delta")) is not None], MS),
        "delivery_delay_ms": summarize([d for r in cold for d in r.delivery_delays()], MS),
    }


def _keep_up_figures(run: KeepUpRun, config: SuiteConfig) -> dict[str, Any]:
    keepup = run.records
    deltas = sum(r.delta_count for r in keepup)
    growth = sorted(g for r in keepup if (g := backlog_growth(r)) is not None)
    worst = growth[-1] if growth else None
    typical = growth[len(growth) // 2] if growth else None
    server_cpu = run.server_cpu_seconds
    return {
        "streams": len(keepup),
        "seconds": round(time.time() - run.began, 2),
        "offered_tokens_per_s": config.tokens_per_second,
        "backlog_growth_median": _rounded(typical, 4),
        "backlog_growth_worst": _rounded(worst, 4),
        "delivered_share": (round(1 / (1 + max(0.0, typical)), 3) if typical is not None else None),
        "keeps_up": (typical < KEEP_UP_GROWTH) if typical is not None else None,
        "delivery_delay_ms": summarize([d for r in keepup for d in r.delivery_delays()], MS),
        "stalls": run.stalls,
        # the whole server process (this variant alone runs meanwhile): with
        # compression, what the compressor costs per token
        "server_cpu_ms_per_1k_tokens": (
            round(1e6 * server_cpu / deltas, 1) if server_cpu is not None and deltas else None
        ),
    }


def _bytes_figures(run: KeepUpRun) -> dict[str, Any]:
    deltas = sum(r.delta_count for r in run.records)
    link_down = run.link("bytes")
    return {
        "delta_events": deltas,
        "proxy_down": run.bytes_down,
        "proxy_up": run.bytes_up,
        "proxy_down_per_token": round(run.bytes_down / deltas, 2) if deltas else None,
        "link_down": link_down,
        "link_packets": run.link("packets"),
        "link_drops": run.link("drops"),
        "link_down_per_token": round(link_down / deltas, 2) if link_down and deltas else None,
    }


async def _measure_variant(
    variant: Variant,
    upstream: Endpoint,
    profile: Profile,
    config: SuiteConfig,
    link: dict[str, str] | None,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """One variant through ``profile``: cold completions, then the keep-up run."""
    cold, encodings = await _cold_run(variant, upstream, profile, config)
    keep_up = await _keep_up_run(variant, upstream, profile, config, link, server_pid)
    every = cold + keep_up.records
    return {
        "variant": variant.label,
        "server": variant.server,
        "transport": variant.transport,
        "compression_offered": variant.compression,
        "compression_used": sorted(e for e in encodings | keep_up.encodings if e),
        "errors": sum(1 for r in every if r.error),
        "error_examples": sorted({r.error for r in every if r.error})[:3],
        "exact_text": sum(1 for r in every if r.text == expected_text(r.prompt, r.max_tokens)),
        "completions": len(every),
        "cold": _cold_figures(cold),
        "keep_up": _keep_up_figures(keep_up, config),
        "bytes": _bytes_figures(keep_up),
        "cdf_ms": {
            "delivery_delay": cdf_points([d * MS for r in every for d in r.delivery_delays()], 400)
        },
    }


def _start(
    spec: ServerSpec, config: SuiteConfig, link: dict[str, str] | None, extra: list[str]
) -> ServerProcess:
    command = spec.command(config.tokens_per_second, config.first_token_latency) + extra
    if link is not None:
        command = ["ip", "netns", "exec", link["server_ns"], *command]
        command += ["--host", link["server_address"]]
    return ServerProcess(command).start()


def measure_profile(
    profile: Profile, config: SuiteConfig, link: dict[str, str] | None = None
) -> dict[str, Any]:
    """Every variant through ``profile``; ``link`` names the shaped link's namespaces when
    this process runs in the client-side namespace (else everything is on loopback)."""
    servers: dict[str, ServerProcess] = {}
    notes: list[str] = []
    variants: list[Variant] = []
    try:
        # started with --sse-compression and --ws-compression: each is used only by the
        # variant whose client offers it
        servers["twinstream"] = _start(TWINSTREAM, config, link, [])
        variants += [
            Variant("twinstream sse", "twinstream", "sse"),
            Variant("twinstream sse+gzip", "twinstream", "sse", True),
            Variant("twinstream ws", "twinstream", "ws"),
            Variant("twinstream ws+deflate", "twinstream", "ws", True),
        ]
        for spec in PYTHON_PEERS:  # the Node peer joins the loopback parts, not these
            servers[spec.name] = _start(spec, config, link, [])
            for transport in spec.transports:
                variants.append(Variant(f"{spec.name} {transport}", spec.name, transport))
        measured: dict[str, Any] = {}
        for variant in variants:
            upstream = Endpoint(servers[variant.server].url)
            measured[variant.label] = run_with_deadline(
                _measure_variant(
                    variant, upstream, profile, config, link, servers[variant.server].pid
                ),
                120 + 30 * (config.network_samples + 1),
                f"network profile {profile.name}, {variant.label}",
            )
    finally:
        for server in servers.values():
            server.stop()
    for label, data in measured.items():
        if data["compression_offered"] and not data["compression_used"]:
            notes.append(f"{label}: the server did not compress (not negotiated)")
    return {"variants": measured, "notes": notes}


def _profile_info(profile: Profile, shaped: bool, unavailable: str | None) -> dict[str, Any]:
    if not profile.capped:
        bandwidth = "not capped"
    elif shaped:
        bandwidth = "shaped by the kernel (tbf in a network namespace)"
    else:
        bandwidth = unavailable or "not shaped"
    return {
        "rtt_ms": profile.rtt * MS,
        "jitter_ms": profile.jitter * MS,
        "down_bps": profile.down_bps,
        "up_bps": profile.up_bps or profile.down_bps,
        "stall_every_s": profile.stall_every,
        "stall_for_ms": profile.stall_for * MS,
        "shared_streams": profile.shared_streams,
        "description": profile.describe(),
        "bandwidth": bandwidth,
        "shaped": shaped,
    }


def _run_in_namespace(link: ShapedLink, profile: Profile, config: SuiteConfig) -> dict[str, Any]:
    """Run :func:`measure_profile` in a child process inside the client namespace."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    request = {
        "profile": dataclasses.asdict(profile),
        "config": config.as_dict(),
        "link": {
            "server_ns": link.server_ns,
            "server_if": link.server_interface(),
            "server_address": link.server_address,
        },
    }
    done = subprocess.run(
        link.in_client([sys.executable, "-m", "benchmarks.network", "--worker"]),
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=900,
    )
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"network worker failed ({done.returncode}): {' / '.join(tail)}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_network(
    config: SuiteConfig,
    profiles: Sequence[str | Profile] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Each profile of ``profiles`` (names from :data:`PROFILES`, or profiles), by default
    ``config.network_profiles``; results keyed by profile name."""
    chosen = [PROFILES[p] if isinstance(p, str) else p for p in profiles or config.network_profiles]
    unavailable = shaping_unavailable() if any(p.capped for p in chosen) else None
    results: dict[str, Any] = {
        "shaping": unavailable or "tbf in network namespaces",
        "shaping_available": unavailable is None,
        "emulation": (
            "RTT, jitter and stalls: the suite's proxy holds each direction's bytes "
            "(in order) and adds one RTT before a new connection's first byte for TCP's "
            "handshake; it cannot emulate TCP's own loss recovery, slow start over a long "
            "RTT, or TLS round trips (add 1-2 RTT to every cold start)."
        ),
        "tokens_per_second": config.tokens_per_second,
        "profiles": {},
    }
    for profile in tqdm(chosen, desc="network", unit="profile", disable=not progress, leave=False):
        name = profile.name
        shaped = profile.capped and unavailable is None
        if shaped:
            with ShapedLink(profile) as link:
                measured = _run_in_namespace(link, profile, config)
        else:
            measured = measure_profile(profile, config)
        results["profiles"][name] = {**_profile_info(profile, shaped, unavailable), **measured}
    return results


def _worker() -> int:
    """``python -m benchmarks.network --worker``: JSON request on stdin, result on stdout."""
    request = json.loads(sys.stdin.read())
    config = SuiteConfig.from_dict(request["config"])
    result = measure_profile(Profile(**request["profile"]), config, request.get("link"))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_worker())
    sys.exit("usage: python -m benchmarks network (this module's --worker is internal)")
