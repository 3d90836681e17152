"""A real synthetic model that records when its generator is closed (for the tests
that a finished generation is closed at once, not by asyncio's finaliser hook)."""

from __future__ import annotations

from server.backends.base import ChatRequest
from server.backends.synthetic import SyntheticBackend


class Watched(SyntheticBackend):
    """The synthetic model, unpaced, saying when its generator was closed."""

    def __init__(self) -> None:
        super().__init__(tokens_per_second=0, first_token_latency=0, fail_after_tokens=None)
        #: the prompt of each completion whose generator was closed, in order
        self.closed: list[str] = []

    async def generate(self, request: ChatRequest):  # type: ignore[no-untyped-def]
        try:
            async for piece in super().generate(request):
                yield piece
        finally:
            self.closed.append(request.messages[-1]["content"])
