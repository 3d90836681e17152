"""The embedded synthetic model: deterministic, bounded, honest about why it stopped."""

from __future__ import annotations

import asyncio
import json
import time

from server.backends.base import BackendError, ChatRequest, Delta, Finish
from server.backends.synthetic import Pacer, SyntheticBackend, synthetic_tokens
from server.backends.synthetic_text import SyntheticReply, synthetic_reply
from server.config import Settings


async def collect(backend: SyntheticBackend, prompt: str, max_tokens: int) -> tuple[str, Finish]:
    pieces: list[str] = []
    finish: Finish | None = None
    async for piece in backend.generate(ChatRequest.from_prompt(prompt, max_tokens)):
        if isinstance(piece, Finish):
            finish = piece
        else:
            pieces.append(piece)
    assert finish is not None
    return "".join(pieces), finish


def test_same_prompt_same_tokens_other_prompt_other_tokens() -> None:
    assert synthetic_tokens("hello") == synthetic_tokens("hello")
    assert synthetic_tokens("hello") != synthetic_tokens("hello!")
    tokens = synthetic_tokens("hello")
    assert 40 <= len(tokens) <= 220
    assert all(tokens)
    assert "".join(tokens)[0].isupper()


async def test_max_tokens_cuts_with_length_otherwise_stop() -> None:
    backend = SyntheticBackend.from_settings(Settings(tokens_per_second=0))
    full = synthetic_tokens("why is the sky blue?")
    text, finish = await collect(backend, "why is the sky blue?", 4096)
    assert text == "".join(full)
    assert finish.reason == "stop"
    assert finish.usage["completion_tokens"] == len(full)
    short, finish = await collect(backend, "why is the sky blue?", 5)
    assert short == "".join(full[:5])
    assert finish.reason == "length"


async def test_failure_injection_raises_after_n_tokens() -> None:
    backend = SyntheticBackend.from_settings(Settings(tokens_per_second=0, fail_after_tokens=3))
    seen: list[str] = []
    try:
        async for piece in backend.generate(ChatRequest.from_prompt("x", 50)):
            assert isinstance(piece, str)
            seen.append(piece)
    except BackendError as exc:
        assert exc.code == "upstream_error"
    else:
        raise AssertionError("expected BackendError")
    assert seen == synthetic_tokens("x")[:3]


def test_chat_request_uses_last_user_message() -> None:
    request = ChatRequest(
        messages=(
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": "second"},
            {"role": "system", "content": "sys"},
        ),
        max_tokens=3,
    )
    assert request.last_user_message == "second"


# --- what the synthetic model does with a whole request (server/backends/synthetic_text.py) ---


def chat(*contents: str, max_tokens: int = 4096, **params: object) -> ChatRequest:
    roles = ["user", "assistant"] * len(contents)
    messages = tuple({"role": role, "content": c} for role, c in zip(roles, contents))
    return ChatRequest(messages=messages, max_tokens=max_tokens, params=params)


def text_of(reply: SyntheticReply) -> str:
    return "".join(p if isinstance(p, str) else p.content for p in reply.pieces)


def test_one_user_message_says_what_the_prompt_alone_says() -> None:
    reply = synthetic_reply(chat("hello", max_tokens=5))
    assert reply.pieces == synthetic_tokens("hello")[:5] and reply.finish_reason == "length"


def test_the_conversation_and_the_seed_change_the_text_deterministically() -> None:
    alone = text_of(synthetic_reply(chat("and then?")))
    in_context = text_of(synthetic_reply(chat("hi", "Hello.", "and then?")))
    other_context = text_of(synthetic_reply(chat("yo", "Hello.", "and then?")))
    assert len({alone, in_context, other_context}) == 3
    assert in_context == text_of(synthetic_reply(chat("hi", "Hello.", "and then?")))
    seeded = {text_of(synthetic_reply(chat("hi", seed=seed))) for seed in (1, 2, 1)}
    assert len(seeded) == 2


def test_temperature_and_top_p_narrow_the_words() -> None:
    cold = synthetic_reply(chat("hi", temperature=0)).pieces
    warm = synthetic_reply(chat("hi", temperature=1)).pieces
    narrow = {str(p).strip(" .,\n").lower() for p in cold} - {""}
    wide = {str(p).strip(" .,\n").lower() for p in warm} - {""}
    assert len(narrow) <= 3 < len(wide)
    assert synthetic_reply(chat("hi", top_p=0.1)).pieces != warm


def test_stop_cuts_before_the_first_stop_sequence() -> None:
    full = text_of(synthetic_reply(chat("hello")))
    stop = full[20:24]
    reply = synthetic_reply(chat("hello", stop=[stop, "zzz-not-there"]))
    assert text_of(reply) == full[: full.index(stop)]
    assert reply.finish_reason == "stop"
    cut = synthetic_reply(chat("hello", max_tokens=2, stop=[full[-3:]]))
    assert cut.finish_reason == "length" and len(cut.pieces) == 2


def test_json_response_formats() -> None:
    wrapped = text_of(synthetic_reply(chat("hello", response_format={"type": "json_object"})))
    assert json.loads(wrapped) == {"answer": text_of(synthetic_reply(chat("hello")))}
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["a", "b"]},
        },
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    value = json.loads(text_of(synthetic_reply(chat("x", response_format=response_format))))
    assert set(value) == {"name", "age", "tags", "kind"} and value["kind"] == "a"
    assert isinstance(value["age"], int) and isinstance(value["tags"][0], str)


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_a_tool_named_in_the_message_is_called() -> None:
    reply = synthetic_reply(chat("what does get weather say?", tools=[WEATHER]))
    assert reply.finish_reason == "tool_calls"
    first, *rest = reply.pieces
    assert isinstance(first, Delta)
    assert first.tool_calls[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert first.tool_calls[0]["id"].startswith("call_")
    arguments = "".join(
        p.tool_calls[0]["function"]["arguments"] for p in rest if isinstance(p, Delta)
    )
    assert set(json.loads(arguments)) == {"city"}
    assert synthetic_reply(chat("hello", tools=[WEATHER])).finish_reason == "stop"  # not asked
    required = synthetic_reply(chat("hello", tools=[WEATHER], tool_choice="required"))
    assert required.finish_reason == "tool_calls"
    refused = synthetic_reply(chat("get weather", tools=[WEATHER], tool_choice="none"))
    assert refused.finish_reason == "stop"


def test_after_a_tool_result_the_model_answers_in_words() -> None:
    request = ChatRequest(
        messages=(
            {"role": "user", "content": "get weather"},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": "sunny"},
        ),
        max_tokens=50,
        params={"tools": [WEATHER]},
    )
    reply = synthetic_reply(request)
    assert reply.finish_reason in ("stop", "length") and all(
        isinstance(p, str) for p in reply.pieces
    )


async def test_the_backend_yields_tool_call_pieces_and_finishes_with_tool_calls() -> None:
    backend = SyntheticBackend.from_settings(Settings(tokens_per_second=0))
    pieces = [p async for p in backend.generate(chat("get_weather", tools=[WEATHER]))]
    finish = pieces[-1]
    assert isinstance(finish, Finish) and finish.reason == "tool_calls"
    assert isinstance(pieces[0], Delta) and backend.parameters >= {"stop", "seed", "tools"}


async def test_a_piece_is_timed_when_released_not_when_its_stream_gets_to_run() -> None:
    """Two streams released by the same pacer wake-up: the first one's consumer
    holds the loop for 50 ms, so the second's piece waits; its ``piece_time``
    is still the release, and a delay measured from it shows the wait."""
    backend = SyntheticBackend.from_settings(
        Settings(tokens_per_second=10, first_token_latency=0.05)
    )
    waited: list[float] = []

    async def consume(name: str) -> None:
        async for piece in backend.generate(ChatRequest.from_prompt(name, 3)):
            if isinstance(piece, Finish):
                return
            released = backend.piece_time()
            if name == "slow":
                time.sleep(0.05)  # a server busy with another stream's event
            else:
                waited.append(time.time() - released)

    await asyncio.gather(consume("slow"), consume("fast"))
    assert len(waited) == 3
    assert all(wait >= 0.05 for wait in waited), waited


async def test_unpaced_pieces_are_timed_when_ready() -> None:
    backend = SyntheticBackend.from_settings(Settings(tokens_per_second=0))
    before = time.time()
    times: list[float] = []
    async for piece in backend.generate(ChatRequest.from_prompt("now", 5)):
        if not isinstance(piece, Finish):
            times.append(backend.piece_time())
    assert len(times) == 5
    assert before <= times[0] and times == sorted(times) and times[-1] <= time.time()


async def test_the_pacer_resolves_to_the_wall_time_of_its_wake_up() -> None:
    pacer = Pacer(slack=0.001)
    loop = asyncio.get_running_loop()
    before = time.time()
    early, late = pacer.wait_until(loop.time() + 0.02), pacer.wait_until(loop.time() + 0.0205)
    released = await early
    assert released == await late  # released together, within the slack
    assert before + 0.02 <= released + 0.002 and released <= time.time()
