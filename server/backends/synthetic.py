"""The embedded synthetic model: deterministic, word-like text, paced like a real model.

The same prompt always yields the same token sequence; ``max_tokens`` only cuts
it short (finish reason ``length``). No key, no network, exact outputs for tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .base import BackendError, ChatRequest, Finish, Piece
from .synthetic_text import SUPPORTED_PARAMETERS, synthetic_reply, synthetic_tokens

__all__ = ["SyntheticBackend", "synthetic_tokens"]

class SyntheticBackend:
    """Deterministic pseudo-LLM.

    ``tokens_per_second=0`` emits as fast as possible (still yielding to the
    event loop between tokens). Pacing follows an absolute schedule, so slow
    consumers do not make the model drift. ``fail_after_tokens`` injects an
    upstream-style failure, for exercising clients' error paths.
    """

    def __init__(
        self,
        model: str = "twinstream-synthetic",
        tokens_per_second: float = 30.0,
        first_token_latency: float = 0.25,
        fail_after_tokens: int | None = None,
    ) -> None:
        if tokens_per_second < 0:
            raise ValueError("tokens_per_second must be >= 0")
        self.model = model
        self.tokens_per_second = tokens_per_second
        self.first_token_latency = first_token_latency if tokens_per_second else 0.0
        self.fail_after_tokens = fail_after_tokens

    #: what it honours; other parameters are refused (``unsupported_parameter``)
    parameters = SUPPORTED_PARAMETERS

    async def generate(self, request: ChatRequest) -> AsyncIterator[Piece | Finish]:
        reply = synthetic_reply(request)
        emitted = reply.pieces
        loop = asyncio.get_running_loop()
        started = loop.time() + self.first_token_latency
        interval = 1.0 / self.tokens_per_second if self.tokens_per_second else 0.0
        for index, token in enumerate(emitted):
            if self.fail_after_tokens is not None and index >= self.fail_after_tokens:
                raise BackendError("upstream_error", "the model failed while generating")
            delay = started + index * interval - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            yield token
        prompt_tokens = reply.prompt_tokens
        yield Finish(
            reason=reply.finish_reason,
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(emitted),
                "total_tokens": prompt_tokens + len(emitted),
            },
        )
