"""The load generator: many concurrent streams from separate worker processes.

The client side must not be what is measured, so streams are spread over a
few worker processes (``spawn``), each running asyncio clients from
:mod:`benchmarks.clients` -- one connection per stream, as many independent
users would have. Each worker reports the CPU time it used, so the report can
show how busy the client side was.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from .clients import Endpoint, StreamRecord, sse_completion, ws_completion

__all__ = ["LoadSpec", "LoadResult", "LoadGenerator"]


@dataclass(frozen=True)
class LoadSpec:
    """``len(prompts)`` streams over ``transport``, their starts spread evenly over
    ``ramp_seconds`` (so connection setup does not all land in one instant)."""

    base_url: str
    transport: str
    prompts: tuple[str, ...]
    max_tokens: int
    ramp_seconds: float = 0.0
    start_at: float = 0.0  # wall clock; 0 = at once
    ws_compression: bool = False
    timeout: float = 120.0


@dataclass
class LoadResult:
    records: list[StreamRecord] = field(default_factory=list)
    client_cpu_seconds: float = 0.0
    began: float = 0.0
    ended: float = 0.0
    worker_pids: list[int] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.records if r.error]


async def _one_stream(
    spec: LoadSpec, endpoint: Endpoint, prompt: str, delay: float
) -> StreamRecord:
    if delay > 0:
        await asyncio.sleep(delay)
    try:
        if spec.transport == "sse":
            record, connection = await asyncio.wait_for(
                sse_completion(endpoint, prompt, spec.max_tokens), spec.timeout
            )
            await connection.close()
            return record
        ws_record, websocket = await asyncio.wait_for(
            ws_completion(endpoint, prompt, spec.max_tokens, compression=spec.ws_compression),
            spec.timeout,
        )
        if websocket is not None:
            await websocket.close()
        return ws_record
    except asyncio.TimeoutError:
        record = StreamRecord(spec.transport, prompt, spec.max_tokens, cold=True, began=time.time())
        record.error = f"timed out after {spec.timeout}s"
        return record


async def run_streams(spec: LoadSpec) -> list[StreamRecord]:
    """Run every stream of ``spec`` concurrently in this process."""
    endpoint = Endpoint(spec.base_url)
    if spec.start_at:
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    count = len(spec.prompts)
    step = spec.ramp_seconds / count if count else 0.0
    return list(
        await asyncio.gather(
            *(
                _one_stream(spec, endpoint, prompt, i * step)
                for i, prompt in enumerate(spec.prompts)
            )
        )
    )


def _worker(spec: LoadSpec) -> tuple[list[StreamRecord], float, int]:
    cpu_before = time.process_time()
    records = asyncio.run(run_streams(spec))
    return records, time.process_time() - cpu_before, os.getpid()


def _warm_up(_index: int) -> int:
    return os.getpid()


class LoadGenerator:
    """A pool of worker processes that run :class:`LoadSpec` shares in parallel.

    Use as a context manager; the pool is started once and reused across runs."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LoadGenerator:
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
        )
        # start every worker now, so the first measured run pays no start-up
        list(self._pool.map(_warm_up, range(self.workers)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, spec: LoadSpec, lead_time: float = 0.3) -> LoadResult:
        """Split ``spec``'s streams over the workers (round robin, interleaved start
        times preserved) and run them; all workers start at the same wall-clock moment."""
        assert self._pool is not None, "use LoadGenerator as a context manager"
        count = len(spec.prompts)
        shares = min(self.workers, max(1, count))
        start_at = time.time() + lead_time
        step = spec.ramp_seconds / count if count else 0.0
        futures = []
        for share in range(shares):
            prompts = spec.prompts[share::shares]
            if not prompts:
                continue
            futures.append(
                self._pool.submit(
                    _worker,
                    LoadSpec(
                        base_url=spec.base_url,
                        transport=spec.transport,
                        prompts=tuple(prompts),
                        max_tokens=spec.max_tokens,
                        ramp_seconds=step * len(prompts) * shares,
                        start_at=start_at + share * step,
                        ws_compression=spec.ws_compression,
                        timeout=spec.timeout,
                    ),
                )
            )
        result = LoadResult(began=start_at)
        for future in futures:
            records, cpu_seconds, pid = future.result()
            result.records.extend(records)
            result.client_cpu_seconds += cpu_seconds
            result.worker_pids.append(pid)
        result.ended = time.time()
        return result
