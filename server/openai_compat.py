"""``POST /v1/chat/completions`` and ``GET /v1/models``: enough of OpenAI's API
that the official SDK works with ``base_url=http://host:port/v1``.

Completions run through the same streams as ``/sse`` and ``/ws``; there is no
resume here (OpenAI's protocol has none), so a closed connection cancels
its stream at once.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from . import protocol, sse
from .backends.base import ChatRequest
from .errors import ApiError, Unauthorized, error_body
from .streams import StreamLog, StreamStore
from .web import EventStreamHandler, JsonErrorHandler, RelayOptions

__all__ = ["ChatCompletionsHandler", "ModelsHandler", "parse_chat_body"]

_ROLES = ("system", "developer", "user", "assistant", "tool")


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _message_text(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):  # content parts: keep the text ones
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _bad("invalid_messages", f"messages[{index}]: only text parts are supported")
            if not isinstance(part.get("text"), str):
                raise _bad("invalid_messages", f"messages[{index}]: a text part needs 'text'")
            texts.append(part["text"])
        return "".join(texts)
    raise _bad("invalid_messages", f"messages[{index}].content must be a string or a list of parts")


def parse_chat_body(body: bytes, limits: protocol.Limits) -> tuple[ChatRequest, bool, bool]:
    """Validate a chat completions body: (request, stream?, include_usage?)."""
    try:
        data = protocol.loads_strict(body or b"null")
    except (ValueError, RecursionError):
        raise _bad("invalid_json", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad("invalid_body", "the request body must be a JSON object")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _bad("invalid_messages", "'messages' must be a non-empty list")
    messages: list[dict[str, str]] = []
    for index, message in enumerate(raw_messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _bad(
                "invalid_messages", f"messages[{index}] needs a 'role' of {', '.join(_ROLES)}"
            )
        messages.append(
            {"role": message["role"], "content": _message_text(message.get("content"), index)}
        )
    user_turns = [m["content"] for m in messages if m["role"] == "user"]
    protocol.validate_prompt(user_turns[-1] if user_turns else "", limits)
    total = sum(len(m["content"].encode("utf-8")) for m in messages)
    if total > limits.max_prompt_bytes:
        raise protocol.ProtocolError(
            "prompt_too_long",
            f"the messages hold {total} bytes; the limit is {limits.max_prompt_bytes} bytes",
            status=413,
        )
    name = "max_completion_tokens" if "max_completion_tokens" in data else "max_tokens"
    max_tokens = protocol.validate_max_tokens(data.get(name), limits, name=name)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("invalid_stream", "'stream' must be true or false")
    options = data.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    return ChatRequest(messages=tuple(messages), max_tokens=max_tokens), stream, include_usage


def _failure(event: dict[str, Any]) -> tuple[str, str]:
    """Code and message for a stream that did not finish: OpenAI's API has no
    "cancelled" finish reason, and a cut answer must not look complete."""
    if event["type"] == "error":
        return event["code"], event["message"]
    return "cancelled", "the completion was cancelled before it finished"


class _OpenAIHandler(JsonErrorHandler):
    def initialize(
        self,
        store: StreamStore,
        limits: protocol.Limits,
        relays: RelayOptions,
        api_key: str | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.relays = relays
        self.api_key = api_key

    def prepare(self) -> None:
        if self.api_key:
            given = self.request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                raise Unauthorized()


class ModelsHandler(_OpenAIHandler):
    def get(self) -> None:
        model = self.store.backend.model
        self.write(
            {
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": "twinstream"}],
            }
        )


def _chunk(stream: StreamLog, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{stream.id}",
        "object": "chat.completion.chunk",
        "created": stream.created,
        "model": stream.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def chunk_frames(stream: StreamLog, include_usage: bool) -> Callable[[int, list[str]], bytes]:
    """Frames a stream's events as OpenAI ``chat.completion.chunk`` events,
    ending with ``data: [DONE]`` (or OpenAI's error object, which the SDK
    raises on)."""

    def data(payload: Any) -> str:
        return sse.format_trusted_data(json.dumps(payload))

    def frame(first_seq: int, texts: list[str]) -> bytes:
        out: list[str] = []
        for text in texts:
            event = json.loads(text)
            kind = event["type"]
            if kind == "start":
                out.append(data(_chunk(stream, {"role": "assistant", "content": ""}, None)))
            elif kind == "delta":
                out.append(data(_chunk(stream, {"content": event["content"]}, None)))
            elif kind == "done":
                reason = "length" if event["finish_reason"] == "length" else "stop"
                out.append(data(_chunk(stream, {}, reason)))
                if include_usage:
                    usage_chunk = _chunk(stream, {}, None)
                    usage_chunk["choices"] = []
                    usage_chunk["usage"] = event.get("usage", {})
                    out.append(data(usage_chunk))
                out.append(sse.format_trusted_data("[DONE]"))
            else:  # error: OpenAI's mid-stream error object; the SDK raises on it
                out.append(data(error_body(502, event["code"], event["message"])))
        return "".join(out).encode()

    return frame


class ChatCompletionsHandler(EventStreamHandler, _OpenAIHandler):
    """Streams ``chat.completion.chunk`` events ending in ``data: [DONE]``,
    or answers one ``chat.completion`` when ``stream`` is false.

    There is no resume on ``/v1`` (OpenAI's protocol has none): when the
    connection closes, the stream is cancelled, so nobody pays for tokens
    nobody reads.
    """

    _stream: StreamLog | None = None

    def prepare(self) -> None:
        super().prepare()
        self.chat, self.streaming, self.include_usage = parse_chat_body(
            self.request.body, self.limits
        )

    async def post(self) -> None:
        self._stream = stream = await self.store.create(self.chat)
        if not self.streaming:
            await stream.wait_ended()
            self._write_completion(stream)
            return
        complete = await self.relay_events(stream, -1, chunk_frames(stream, self.include_usage))
        if not complete:
            stream.cancel()

    def _write_completion(self, stream: StreamLog) -> None:
        last = stream.last_event()
        if last["type"] == "error":
            raise ApiError(502, last["code"], last["message"])
        if last["finish_reason"] == "cancelled":
            raise ApiError(503, *_failure(last))
        self.write(
            {
                "id": f"chatcmpl-{stream.id}",
                "object": "chat.completion",
                "created": stream.created,
                "model": stream.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": stream.text()},
                        "finish_reason": "length"
                        if last.get("finish_reason") == "length"
                        else "stop",
                    }
                ],
                "usage": last.get("usage", {}),
            }
        )

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self._stream is not None:
            self._stream.cancel()  # nobody reads the answer any more
