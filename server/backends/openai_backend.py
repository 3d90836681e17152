"""The real backend: any OpenAI-compatible chat completions API, via the official SDK.

Configured by ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (vLLM, Ollama,
llama.cpp and this server's own ``/v1`` all work). The key stays here: clients
of twinstream never see it. Every upstream failure becomes a
:class:`BackendError` with a public code and message; the SDK's own message
(which may name hosts or echo headers) is only logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import openai

from .base import FINISH_REASONS, BackendError, ChatRequest, Delta, Finish, Piece

__all__ = ["OpenAIBackend"]

log = logging.getLogger("twinstream.openai")


def _public_error(exc: Exception) -> BackendError:
    """Map an SDK exception to a code and a message safe to show a client."""
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return BackendError("upstream_auth", "the model provider rejected the server's credentials")
    if isinstance(exc, openai.RateLimitError):
        return BackendError(
            "upstream_rate_limited", "the model provider is rate limiting; retry later"
        )
    if isinstance(exc, openai.APITimeoutError):
        return BackendError("upstream_timeout", "the model provider did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return BackendError("upstream_unavailable", "could not reach the model provider")
    if isinstance(exc, openai.NotFoundError):
        return BackendError("upstream_not_found", "the model provider does not know this model")
    if isinstance(exc, openai.BadRequestError):
        return BackendError("upstream_bad_request", "the model provider refused the request")
    return BackendError("upstream_error", "the model provider failed while generating")


class OpenAIBackend:
    """Streams ``chat.completions.create(stream=True)`` deltas: text, tool-call
    deltas, refusals and logprobs, with every parameter the client set.

    Cancelling the consuming task closes the upstream HTTP response, so the
    provider stops generating (and billing) too.
    """

    def __init__(
        self,
        model: str,
        *,
        max_retries: int,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.model = model
        self._client = openai.AsyncOpenAI(
            # The SDK refuses to start without a key; local servers ignore it.
            api_key=api_key or "not-needed",
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
        )

    async def close(self) -> None:
        await self._client.close()

    async def generate(self, request: ChatRequest) -> AsyncIterator[Piece | Finish]:
        finish: str | None = None
        usage: dict[str, int] = {}
        try:
            stream: Any = await self._client.chat.completions.create(
                **request_arguments(request, self.model)
            )
            try:
                async for chunk in stream:
                    if getattr(chunk, "usage", None):
                        usage = {
                            "prompt_tokens": chunk.usage.prompt_tokens,
                            "completion_tokens": chunk.usage.completion_tokens,
                            "total_tokens": chunk.usage.total_tokens,
                        }
                    for choice in chunk.choices or ():
                        piece = _piece(choice)
                        if piece:
                            yield piece
                        if choice.finish_reason:
                            finish = choice.finish_reason
            finally:
                await stream.close()
        except openai.OpenAIError as exc:
            log.warning("upstream error: %r", exc)
            raise _public_error(exc) from exc
        if finish is None:
            # The SDK ends quietly when the connection drops before [DONE].
            log.warning("upstream stream ended without a finish_reason")
            raise BackendError(
                "upstream_disconnected", "the model provider closed the stream early"
            )
        yield Finish(reason=_FINISH.get(finish, "stop"), usage=usage)


# OpenAI's deprecated "function_call" is what "tool_calls" replaced.
_FINISH = {reason: reason for reason in FINISH_REASONS} | {"function_call": "tool_calls"}


def request_arguments(request: ChatRequest, default_model: str) -> dict[str, Any]:
    """``chat.completions.create`` arguments: every parameter the client set,
    and the fields twinstream does not know as ``extra_body`` (sent as they are)."""
    arguments: dict[str, Any] = {
        "model": request.model or default_model,
        "messages": list(request.messages),
        request.max_tokens_field: request.max_tokens,
        **request.params,
        "stream": True,
        # usage arrives in a last chunk only when asked for
        "stream_options": {"include_usage": True},
    }
    if request.extra:
        arguments["extra_body"] = dict(request.extra)
    return arguments


def _piece(choice: Any) -> Piece:
    """One streamed choice as a piece: plain text stays a str (the common case)."""
    delta = choice.delta
    content = (delta.content or "") if delta is not None else ""
    tool_calls = getattr(delta, "tool_calls", None) or ()
    refusal = getattr(delta, "refusal", None)
    logprobs = getattr(choice, "logprobs", None)
    if not (tool_calls or refusal or logprobs):
        return content
    return Delta(
        content=content,
        tool_calls=tuple(call.model_dump(exclude_none=True) for call in tool_calls),
        refusal=refusal or None,
        logprobs=logprobs.model_dump(exclude_none=True) if logprobs is not None else None,
    )
