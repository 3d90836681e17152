"""The embedded synthetic model: deterministic, bounded, honest about why it stopped."""

from __future__ import annotations

from server.backends.base import BackendError, ChatRequest, Finish
from server.backends.synthetic import SyntheticBackend, synthetic_tokens


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
    backend = SyntheticBackend(tokens_per_second=0)
    full = synthetic_tokens("why is the sky blue?")
    text, finish = await collect(backend, "why is the sky blue?", 4096)
    assert text == "".join(full)
    assert finish.reason == "stop"
    assert finish.usage["completion_tokens"] == len(full)
    short, finish = await collect(backend, "why is the sky blue?", 5)
    assert short == "".join(full[:5])
    assert finish.reason == "length"


async def test_failure_injection_raises_after_n_tokens() -> None:
    backend = SyntheticBackend(tokens_per_second=0, fail_after_tokens=3)
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
