"""twinstream events as OpenAI Chat Completions objects, for ``/v1``.

Pure code (no tornado, no asyncio, no I/O): :func:`chunk_payloads` maps one
stream event to the ``data:`` payloads of a ``stream: true`` answer;
:func:`completion` folds a whole log into one ``chat.completion`` object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .errors import ProtocolError, error_body

__all__ = ["chunk_payloads", "completion", "merge_tool_calls", "model_object"]


def _failure(event: dict[str, Any]) -> ProtocolError:
    """A stream that did not finish. OpenAI's API has no "cancelled" finish
    reason, and a cut answer must not look complete: both are errors."""
    if event["type"] == "error":
        return ProtocolError(event["code"], event["message"], status=502)
    return ProtocolError("cancelled", "the completion was cancelled before it finished", status=503)


def _chunk(
    completion_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def chunk_payloads(
    event: dict[str, Any], completion_id: str, created: int, model: str, include_usage: bool
) -> list[str]:
    """The SSE ``data`` payloads for one event of a ``/v1`` stream: a
    ``chat.completion.chunk`` per event; after ``done``, the usage chunk (if
    asked for) and ``[DONE]``; for ``error`` or a cancelled ``done``, OpenAI's
    mid-stream ``{"error": ...}`` object (its SDKs raise on it), then ``[DONE]``:
    no chunk carries a ``finish_reason``, so a cut answer never looks finished,
    and a client that reads to ``[DONE]`` stops there too."""
    kind = event["type"]
    if kind == "start":
        chunk = _chunk(completion_id, created, model, {"role": "assistant", "content": ""}, None)
        return [json.dumps(chunk)]
    if kind == "delta":
        delta: dict[str, Any] = {}
        if event.get("content") or not (event.get("tool_calls") or event.get("refusal")):
            delta["content"] = event.get("content", "")
        if event.get("tool_calls"):
            delta["tool_calls"] = event["tool_calls"]
        if event.get("refusal"):
            delta["refusal"] = event["refusal"]
        chunk = _chunk(completion_id, created, model, delta, None)
        if event.get("logprobs"):
            chunk["choices"][0]["logprobs"] = event["logprobs"]
        return [json.dumps(chunk)]
    if kind == "done" and event["finish_reason"] != "cancelled":
        payloads = [json.dumps(_chunk(completion_id, created, model, {}, event["finish_reason"]))]
        if include_usage:
            usage_chunk = _chunk(completion_id, created, model, {}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = event.get("usage", {})
            payloads.append(json.dumps(usage_chunk))
        payloads.append("[DONE]")
        return payloads
    failure = _failure(event)
    return [json.dumps(error_body(failure.status, failure.code, failure.message)), "[DONE]"]


def merge_tool_calls(fragments: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join streamed tool-call deltas (by ``index``) into whole tool calls."""
    calls: dict[int, dict[str, Any]] = {}
    for fragment in fragments:
        call = calls.setdefault(
            fragment.get("index", 0),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if fragment.get("id"):
            call["id"] = fragment["id"]
        function = fragment.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[index] for index in sorted(calls)]


def completion(
    events: list[dict[str, Any]], completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """The ``chat.completion`` object for an ended stream's events; raises
    ProtocolError (502 with the error's code, 503 ``cancelled``) if it did
    not finish."""
    last = events[-1]
    if last["type"] == "error" or last.get("finish_reason") == "cancelled":
        raise _failure(last)
    deltas = [event for event in events if event["type"] == "delta"]
    text = "".join(event.get("content", "") for event in deltas)
    tool_calls = merge_tool_calls(call for event in deltas for call in event.get("tool_calls", ()))
    refusal = "".join(event.get("refusal") or "" for event in deltas)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not (tool_calls or refusal) else None,
        "refusal": refusal or None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    logprobs: dict[str, list[Any]] = {}
    for event in deltas:
        for key, items in (event.get("logprobs") or {}).items():
            if isinstance(items, list):
                logprobs.setdefault(key, []).extend(items)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": logprobs or None,
                "finish_reason": last["finish_reason"],
            }
        ],
        "usage": last.get("usage", {}),
    }


def model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": "twinstream"}
