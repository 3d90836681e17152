"""The embedded synthetic model: deterministic, word-like text, paced like a real model.

The same prompt always yields the same token sequence; ``max_tokens`` only cuts
it short (finish reason ``length``). No key, no network, exact outputs for tests.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator

from ..config import Settings
from .base import BackendError, ChatRequest, Finish, Piece
from .synthetic_text import SUPPORTED_PARAMETERS, synthetic_reply, synthetic_tokens

__all__ = ["SyntheticBackend", "Pacer", "synthetic_tokens"]


class Pacer:
    """One timer for every paced stream on an event loop.

    A paced model needs each stream to wake at its next token's time. A timer
    per token per stream (``asyncio.sleep``) costs a TimerHandle each; here
    the due times wait in one heap and a single timer wakes every stream due
    within ``slack`` seconds together. A token may leave up to ``slack`` early,
    never late, so the schedule (and so the rate) stays exact.

    Each future resolves to the wall-clock time of the wake-up that released it:
    the moment the token became available, however long its stream's task then
    waits for its turn on the loop.
    """

    def __init__(self, slack: float = 0.001) -> None:
        self.slack = slack
        self._heap: list[tuple[float, int, asyncio.Future[float]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def wait_until(self, when: float) -> asyncio.Future[float]:
        """A future that resolves at loop time ``when`` (cancel it to withdraw),
        to the wall-clock time it was released."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        heapq.heappush(self._heap, (when, next(self._order), future))
        if self._timer is None or when < self._timer_at:
            self._arm(loop, when)
        return future

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = None
        horizon = loop.time() + self.slack
        released = time.time()
        heap = self._heap
        while heap and heap[0][0] <= horizon:
            future = heapq.heappop(heap)[2]
            if not future.done():
                future.set_result(released)
        if heap:
            self._arm(loop, heap[0][0])


class SyntheticBackend:
    """Deterministic pseudo-LLM.

    ``tokens_per_second=0`` emits as fast as possible (still yielding to the
    event loop between tokens). Pacing follows an absolute schedule, so slow
    consumers do not make the model drift, and every stream of an event loop
    shares one :class:`Pacer`. ``fail_after_tokens`` injects an
    upstream-style failure, for exercising clients' error paths.

    :meth:`piece_time` says when the piece just yielded became available (the
    analogue of a real model's chunk being read off the upstream socket), so a
    delivery delay measured from it includes the time the piece then waits
    for its stream's turn on the server's event loop.
    """

    #: the model name when ``--model`` names none
    DEFAULT_MODEL = "twinstream-synthetic"

    def __init__(
        self,
        *,
        tokens_per_second: float,
        first_token_latency: float,
        fail_after_tokens: int | None,
        model: str = DEFAULT_MODEL,
    ) -> None:
        if tokens_per_second < 0:
            raise ValueError("tokens_per_second must be >= 0")
        self.model = model
        self.tokens_per_second = tokens_per_second
        self.first_token_latency = first_token_latency if tokens_per_second else 0.0
        self.fail_after_tokens = fail_after_tokens
        self._pacers: dict[asyncio.AbstractEventLoop, Pacer] = {}
        self._piece_time = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SyntheticBackend:
        """The model ``settings`` describe (``--tokens-per-second``,
        ``--first-token-latency``, ``--fail-after-tokens``, ``--model``)."""
        return cls(
            tokens_per_second=settings.tokens_per_second,
            first_token_latency=settings.first_token_latency,
            fail_after_tokens=settings.fail_after_tokens,
            model=settings.model or cls.DEFAULT_MODEL,
        )

    def piece_time(self) -> float:
        """Wall-clock time at which the piece this backend yielded last became
        available: the pacer's wake-up that released it (or, unpaced or behind
        schedule, the moment its turn came), before it waited for its stream's
        task to run. Read it as soon as the piece arrives, before awaiting
        anything: another stream's piece replaces it."""
        return self._piece_time

    def _pacer(self, loop: asyncio.AbstractEventLoop) -> Pacer:
        pacer = self._pacers.get(loop)
        if pacer is None:
            # Tests run several loops in one process; each gets its own pacer.
            self._pacers = {k: v for k, v in self._pacers.items() if not k.is_closed()}
            pacer = self._pacers[loop] = Pacer(slack=min(0.001, self._interval() / 4))
        return pacer

    def _interval(self) -> float:
        return 1.0 / self.tokens_per_second if self.tokens_per_second else 0.0

    #: what it honours; other parameters are refused (``unsupported_parameter``)
    parameters = SUPPORTED_PARAMETERS

    async def generate(self, request: ChatRequest) -> AsyncIterator[Piece | Finish]:
        """Yield the reply's pieces (:func:`synthetic_reply`) on schedule, then
        a Finish. Cancelling the consumer stops it at the next token."""
        reply = synthetic_reply(request)
        emitted = reply.pieces
        loop = asyncio.get_running_loop()
        interval = self._interval()
        pacer = self._pacer(loop) if interval else None
        due = loop.time() + self.first_token_latency
        for index, token in enumerate(emitted):
            if self.fail_after_tokens is not None and index >= self.fail_after_tokens:
                raise BackendError("upstream_error", "the model failed while generating")
            if pacer is not None and due > loop.time():
                available = await pacer.wait_until(due)
            else:
                # unpaced, or behind schedule (catching up): ready now, but let others run
                available = time.time()
                await asyncio.sleep(0)
            due += interval
            self._piece_time = available
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
