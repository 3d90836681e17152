"""What a backend is: something that turns a chat into an async stream of text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["ChatRequest", "Finish", "Backend", "BackendError"]


@dataclass(frozen=True)
class ChatRequest:
    """A chat to complete. ``/sse`` and ``/ws`` send one user message."""

    messages: tuple[dict[str, str], ...]
    max_tokens: int
    model: str | None = None

    @classmethod
    def from_prompt(cls, prompt: str, max_tokens: int) -> ChatRequest:
        return cls(messages=({"role": "user", "content": prompt},), max_tokens=max_tokens)

    @property
    def last_user_message(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message.get("content", "")
        return ""


@dataclass(frozen=True)
class Finish:
    """Yielded last by a backend: why generation stopped ("stop" or "length")."""

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

    def generate(self, request: ChatRequest) -> AsyncIterator[str | Finish]:
        """Yield content pieces as they are produced, then one :class:`Finish`.

        Raises :class:`BackendError` on failure. Cancelling the consuming task
        must stop generation (and close any upstream connection)."""
        ...
