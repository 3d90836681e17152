"""What a backend is: something that turns a chat into an async stream of pieces.

Pure types, no I/O: :mod:`server.wire.chat_request` builds a :class:`ChatRequest`
from what a client sent; a backend yields text (``str``) or :class:`Delta`
pieces, then one :class:`Finish`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ChatRequest",
    "Delta",
    "Piece",
    "Finish",
    "Backend",
    "BackendError",
    "FINISH_REASONS",
    "close_pieces",
]

#: why a backend stopped (OpenAI's finish reasons; ``cancelled`` is the stream's own)
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


@dataclass(frozen=True)
class ChatRequest:
    """A Chat Completions request, validated (see :mod:`server.wire.chat_request`).

    ``messages`` are OpenAI message objects with ``content`` normalised to a
    string (or ``None`` for an assistant turn that only called tools).
    ``params`` holds the generation parameters the client set, by their
    OpenAI names (``temperature``, ``stop`` as a list, ``seed``, ``tools``...);
    ``extra`` the fields twinstream does not know, which the openai backend
    forwards as they are (the SDK's ``extra_body``).
    """

    messages: tuple[dict[str, Any], ...]
    max_tokens: int
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: which name the client used for the token cap (newer OpenAI models want
    #: ``max_completion_tokens``); forwarded under the same name
    max_tokens_field: str = "max_tokens"

    @classmethod
    def from_prompt(cls, prompt: str, max_tokens: int) -> ChatRequest:
        return cls(messages=({"role": "user", "content": prompt},), max_tokens=max_tokens)

    @property
    def last_user_message(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message.get("content") or ""
        return ""

    @property
    def is_single_prompt(self) -> bool:
        """One user message and no parameters: what ``/sse?prompt=P`` sends."""
        return (
            len(self.messages) == 1
            and self.messages[0].get("role") == "user"
            and not self.params
            and not self.extra
        )


@dataclass(frozen=True)
class Delta:
    """A piece that is more than text: tool-call deltas (OpenAI's
    ``delta.tool_calls`` items, with ``index``), a piece of a refusal, and the
    piece's ``logprobs`` (OpenAI's ``choice.logprobs`` object)."""

    content: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()
    refusal: str | None = None
    logprobs: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.content or self.tool_calls or self.refusal or self.logprobs)


Piece = str | Delta


@dataclass(frozen=True)
class Finish:
    """Yielded last by a backend: why generation stopped (one of
    :data:`FINISH_REASONS`) and the token usage, if known."""

    reason: str
    usage: dict[str, int] = field(default_factory=dict)


class BackendError(Exception):
    """Generation failed. ``code`` and ``message`` are safe to show a client;
    the cause (with any internal detail) is only logged."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Backend(Protocol):
    #: the model name announced in ``start`` events
    model: str

    def generate(self, request: ChatRequest) -> AsyncIterator[Piece | Finish]:
        """Yield pieces as they are produced, then one :class:`Finish`.

        Raises :class:`BackendError` on failure. Cancelling the consuming task
        must stop generation (and close any upstream connection).

        A backend may also have ``parameters``: the request parameters it
        honours (a frozenset of names). Requests asking for any other are
        refused with ``unsupported_parameter`` before a stream starts; a
        backend without it takes every parameter.

        It may also have ``piece_time()``: the wall-clock time at which the
        piece it yielded last became available (see
        :meth:`~server.backends.synthetic.SyntheticBackend.piece_time`). Events
        are stamped with it (``t``); without it, with the time they are made."""
        ...


async def close_pieces(pieces: AsyncIterator[Any]) -> None:
    """Close what :meth:`Backend.generate` returned, once its consumer is done
    with it (a no-op for a generator that ran to its end).

    A consumer that stops at the :class:`Finish` leaves the generator suspended
    there. Left to the garbage collector, asyncio's finaliser hook closes it on
    a later loop turn through ``call_soon_threadsafe``: a write to the loop's
    self-pipe, a wake-up and a task, for every completion.
    """
    aclose = getattr(pieces, "aclose", None)
    if aclose is not None:
        await aclose()
