"""What the synthetic model says: deterministic, word-like text for a chat.

Pure code (no asyncio, no I/O); :mod:`server.backends.synthetic` paces it.
The same request always gives the same reply. What changes the text: the
conversation (every message, not only the last), ``seed``, ``temperature``
and ``top_p``; ``max_tokens`` and ``stop`` only cut it. A one-message chat
with no parameters gives exactly ``synthetic_tokens(prompt)``, so
``/sse?prompt=P`` and a chat of one user message ``P`` say the same.

``response_format`` ``json_object`` wraps the text as ``{"answer": ...}``;
``json_schema`` gives a value of the schema. With ``tools`` the model calls
one tool, deterministically: the one ``tool_choice`` names, the first with
``"required"``, or with ``"auto"`` (the default) the first whose name appears
in the last message when that is the user's (so a tool result gets a text
reply). The arguments are a value of the tool's ``parameters`` schema.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from .base import ChatRequest, Delta, Piece

__all__ = ["SUPPORTED_PARAMETERS", "SyntheticReply", "synthetic_reply", "synthetic_tokens"]

#: the request parameters the synthetic model honours (see the module docstring);
#: ``user`` and ``metadata`` label a request and change nothing
SUPPORTED_PARAMETERS = frozenset(
    {
        "temperature",
        "top_p",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "metadata",
    }
)

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
# Every token is one of these shared strings: a stream's token list holds
# references, not a new string per token (thousands of live streams).
_SPACED = {word: " " + word for word in _WORDS}
_CAPITAL = {word: word.capitalize() for word in _WORDS}
_SPACED_CAPITAL = {word: " " + word.capitalize() for word in _WORDS}


def _rng(key: str) -> random.Random:
    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return random.Random(seed)


def synthetic_tokens(prompt: str, vocabulary: int | None = None) -> list[str]:
    """The full token sequence for ``prompt`` (before any ``max_tokens`` cut).

    ``vocabulary`` keeps only that many words to choose from (lower
    ``temperature``/``top_p``: a narrower, more repetitive choice)."""
    words = _WORDS[: max(3, vocabulary)] if vocabulary is not None else _WORDS
    rng = _rng(prompt)
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
            word = rng.choice(words)
            first = not tokens or tokens[-1] == "\n\n"
            tokens.append(_CAPITAL[word] if first else _SPACED_CAPITAL[word])
        else:
            if rng.random() < 0.07:
                tokens.append(",")
            tokens.append(_SPACED[rng.choice(words)])
        sentence_left -= 1
    return tokens[:total]


@dataclass(frozen=True)
class SyntheticReply:
    pieces: list[Piece]
    finish_reason: str
    prompt_tokens: int


def _key(request: ChatRequest) -> str:
    """What the text depends on. A lone user message with no text-changing
    parameter keys on the prompt alone (the historic text)."""
    params = request.params
    shaping = {k: params[k] for k in ("seed", "temperature", "top_p") if k in params}
    if len(request.messages) == 1 and not shaping:
        return request.last_user_message
    return json.dumps([list(request.messages), shaping], sort_keys=True, ensure_ascii=False)


def _vocabulary(request: ChatRequest) -> int | None:
    temperature = request.params.get("temperature")
    top_p = request.params.get("top_p")
    if temperature is None and top_p is None:
        return None
    share = min(1.0, 1.0 if temperature is None else temperature)
    share *= 1.0 if top_p is None else top_p
    return round(len(_WORDS) * share)


def _schema_value(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A small value that fits a JSON schema (the common keywords only)."""
    if not isinstance(schema, dict) or depth > 6:
        return None
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _schema_value(schema[key][0], rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {name: _schema_value(sub, rng, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [_schema_value(schema.get("items"), rng, depth + 1)]
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return rng.randint(1, 1000) / 10
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return rng.choice(_WORDS)


def _json_pieces(value: Any) -> list[str]:
    text = json.dumps(value, ensure_ascii=False)
    return re.findall(r"\s*[^\s]+", text) or [text]


def _tool_to_call(request: ChatRequest) -> dict[str, Any] | None:
    tools = request.params.get("tools") or []
    choice = request.params.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        return next(tool["function"] for tool in tools if tool["function"]["name"] == name)
    if choice == "required":
        return tools[0]["function"]
    last = request.messages[-1]
    if last["role"] != "user":
        return None  # e.g. a tool result came back: answer in words
    said = (last["content"] or "").lower()
    for tool in tools:
        name = tool["function"]["name"]
        if name.lower() in said or name.lower().replace("_", " ") in said:
            return tool["function"]
    return None


def synthetic_reply(request: ChatRequest) -> SyntheticReply:
    """The pieces the synthetic model yields for ``request``, after the
    ``max_tokens`` and ``stop`` cuts, and why it stopped."""
    prompt_tokens = sum(len((m.get("content") or "").split()) for m in request.messages)
    key = _key(request)
    tool = _tool_to_call(request)
    if tool is not None:
        rng = _rng("tool\0" + key)
        arguments = json.dumps(_schema_value(tool.get("parameters") or {}, rng) or {})
        call_id = "call_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
        head = {"index": 0, "id": call_id, "type": "function"}
        pieces: list[Piece] = [
            Delta(tool_calls=({**head, "function": {"name": tool["name"], "arguments": ""}},))
        ]
        pieces += [
            Delta(tool_calls=({"index": 0, "function": {"arguments": part}},))
            for part in _json_pieces(json.loads(arguments))
        ]
        if len(pieces) > request.max_tokens:
            return SyntheticReply(pieces[: request.max_tokens], "length", prompt_tokens)
        return SyntheticReply(pieces, "tool_calls", prompt_tokens)
    words = synthetic_tokens(key, _vocabulary(request))
    response_format = request.params.get("response_format") or {}
    text_pieces: list[str]
    if response_format.get("type") == "json_object":
        text_pieces = (
            ['{"answer": "']
            + [json.dumps(word, ensure_ascii=False)[1:-1] for word in words]
            + ['"}']
        )
    elif response_format.get("type") == "json_schema":
        schema = response_format["json_schema"].get("schema") or {"type": "object"}
        text_pieces = _json_pieces(_schema_value(schema, _rng("schema\0" + key)))
    else:
        text_pieces = words
    kept = text_pieces[: request.max_tokens]
    reason = "length" if len(kept) < len(text_pieces) else "stop"
    stops = request.params.get("stop") or []
    if stops:
        text = "".join(kept)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            reason = "stop"
            kept, used = [], 0
            for piece in text_pieces:
                if used + len(piece) >= cut:
                    if cut > used:
                        kept.append(piece[: cut - used])
                    break
                kept.append(piece)
                used += len(piece)
    return SyntheticReply(list(kept), reason, prompt_tokens)
