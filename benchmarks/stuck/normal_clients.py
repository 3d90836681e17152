"""The normal clients of a run: streaming completions back to back, in a worker process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..clients import (
    Endpoint,
    SSEConnection,
    expected_text,
    prompts_with_tokens,
    sse_completion,
    ws_completion,
)

__all__ = ["normal_worker"]


def normal_worker(
    base_url: str,
    transport: str,
    clients: int,
    start_at: float,
    end_at: float,
    max_tokens: int,
) -> dict[str, Any]:
    """``clients`` clients, each streaming completions back to back on its own
    connection from ``start_at`` until ``end_at`` (wall clock)."""
    endpoint = Endpoint(base_url)
    prompts = prompts_with_tokens(clients * 4, max_tokens, "normal")

    async def client(index: int) -> tuple[list[float], int, int, list[str]]:
        await asyncio.sleep(max(0.0, start_at - time.time()) + 0.01 * index)
        delays: list[float] = []
        completions = errors = 0
        examples: list[str] = []
        sse_connection: SSEConnection | None = None
        websocket = None
        try:
            while time.time() < end_at:
                prompt = prompts[(index * 4 + completions) % len(prompts)]
                if transport == "sse":
                    record, sse_connection = await sse_completion(
                        endpoint, prompt, max_tokens, sse_connection
                    )
                else:
                    record, websocket = await ws_completion(endpoint, prompt, max_tokens, websocket)
                completions += 1
                delays += record.delivery_delays()
                if record.error or record.text != expected_text(prompt, max_tokens):
                    errors += 1
                    examples.append(record.error or "text differs from the model's")
        finally:
            if sse_connection is not None:
                await sse_connection.close()
            if websocket is not None:
                await websocket.close()
        return delays, completions, errors, examples

    async def everyone() -> list[tuple[list[float], int, int, list[str]]]:
        return list(await asyncio.gather(*(client(i) for i in range(clients))))

    results = asyncio.run(everyone())
    return {
        "delays": [d for r in results for d in r[0]],
        "completions": sum(r[1] for r in results),
        "errors": sum(r[2] for r in results),
        "error_examples": sorted({e for r in results for e in r[3]})[:3],
    }
