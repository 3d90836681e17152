"""The embedded synthetic model: deterministic, word-like text, paced like a real model.

The same prompt always yields the same token sequence; ``max_tokens`` only cuts
it short (finish reason ``length``). No key, no network, exact outputs for tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator

from .base import BackendError, ChatRequest, Finish

__all__ = ["SyntheticBackend", "synthetic_tokens"]

_WORDS = (
    "the a stream token server client event socket browser model reply prompt answer "
    "quick steady small careful bright simple honest latency message signal packet "
    "buffer flush connection transport network window frame line field value order "
    "each every one two three first last next early late fast slow clear open close "
    "reads writes sends carries keeps moves starts ends waits resumes streams returns "
    "and or but so then while when because after before until with without through "
    "over under into onto from across between around within of to in on at by for "
    "is was are were has had can will may should must does did "
    "café naïve über façade piñata résumé"
).split()
_MIN_TOKENS, _MAX_TOKENS = 40, 220


def synthetic_tokens(prompt: str) -> list[str]:
    """The full token sequence for ``prompt`` (before any ``max_tokens`` cut)."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")
    rng = random.Random(seed)
    total = rng.randint(_MIN_TOKENS, _MAX_TOKENS)
    tokens: list[str] = []
    sentence_left = 0
    while len(tokens) < total:
        if sentence_left == 0:
            if tokens:
                tokens.append(".")
                if rng.random() < 0.15:
                    tokens.append("\n\n")
                if len(tokens) >= total:
                    break
            sentence_left = rng.randint(5, 14)
            word = rng.choice(_WORDS).capitalize()
            first = not tokens or tokens[-1] == "\n\n"
            tokens.append(word if first else " " + word)
        else:
            if rng.random() < 0.07:
                tokens.append(",")
            tokens.append(" " + rng.choice(_WORDS))
        sentence_left -= 1
    return tokens[:total]


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

    async def generate(self, request: ChatRequest) -> AsyncIterator[str | Finish]:
        tokens = synthetic_tokens(request.last_user_message)
        emitted = tokens[: request.max_tokens]
        loop = asyncio.get_running_loop()
        started = loop.time() + self.first_token_latency
        interval = 1.0 / self.tokens_per_second if self.tokens_per_second else 0.0
        for index, token in enumerate(emitted):
            if self.fail_after_tokens is not None and index >= self.fail_after_tokens:
                raise BackendError("upstream_error", "the model failed while generating")
            delay = started + index * interval - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            yield token
        prompt_tokens = len(request.last_user_message.split())
        yield Finish(
            reason="length" if len(emitted) < len(tokens) else "stop",
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(emitted),
                "total_tokens": prompt_tokens + len(emitted),
            },
        )
