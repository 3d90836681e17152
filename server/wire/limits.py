"""Bounds on what a client may ask for, and the checks of the two values every
transport takes (the prompt and ``max_tokens``). Pure code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ProtocolError
from .ids import DECIMAL

#: how many times the prompt limit a request body may be, unless ``--max-body-bytes`` says
BODY_FACTOR = 8


@dataclass(frozen=True)
class Limits:
    """Bounds on what a client may ask for. ``max_prompt_bytes`` is a setting
    (``--max-prompt-bytes``): :attr:`server.config.Settings.limits` builds these."""

    max_prompt_bytes: int
    max_tokens_limit: int = 4096
    default_max_tokens: int = 256
    #: the request parameters the backend honours; others get ``unsupported_parameter``
    #: (``None``: the backend takes every parameter, e.g. the openai backend forwards them)
    supported_parameters: frozenset[str] | None = None
    #: ``--max-body-bytes`` (0: derived, see :attr:`body_bytes`)
    max_body_bytes: int = 0

    @property
    def body_bytes(self) -> int:
        """The largest request body, and WebSocket frame, accepted: ``--max-body-bytes``,
        else the prompt limit times :data:`BODY_FACTOR` (room for JSON escaping,
        tools and parameters). The one place this is derived."""
        return self.max_body_bytes or BODY_FACTOR * self.max_prompt_bytes


def validate_prompt(prompt: Any, limits: Limits) -> str:
    if prompt is None:
        raise ProtocolError("missing_prompt", "'prompt' is required and must not be empty")
    if not isinstance(prompt, str):
        raise ProtocolError("invalid_prompt", "'prompt' must be a string")
    if not prompt.strip():
        raise ProtocolError("missing_prompt", "'prompt' is required and must not be empty")
    try:
        size = len(prompt.encode("utf-8"))
    except UnicodeEncodeError:
        raise ProtocolError("invalid_prompt", "'prompt' is not valid Unicode text") from None
    if size > limits.max_prompt_bytes:
        raise ProtocolError(
            "prompt_too_long",
            f"'prompt' is {size} bytes; the limit is {limits.max_prompt_bytes} bytes",
            status=413,
        )
    return prompt


def validate_max_tokens(
    value: Any, limits: Limits, name: str = "max_tokens", from_query: bool = False
) -> int:
    """Accept an int (or, with ``from_query``, a decimal string); ``None`` means the default."""
    if value is None:
        return limits.default_max_tokens
    if from_query and isinstance(value, str):
        text = value.strip()
        if not DECIMAL.fullmatch(text):
            raise ProtocolError(
                "invalid_max_tokens",
                f"'{name}' must be an integer from 1 to {limits.max_tokens_limit}",
            )
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(
            "invalid_max_tokens", f"'{name}' must be an integer from 1 to {limits.max_tokens_limit}"
        )
    if not 1 <= value <= limits.max_tokens_limit:
        raise ProtocolError(
            "invalid_max_tokens",
            f"'{name}' is {value}; it must be from 1 to {limits.max_tokens_limit}",
        )
    return value
