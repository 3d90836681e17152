"""Pure tests of the event -> OpenAI object mapping used by /v1."""

from __future__ import annotations

import json

import pytest

from server.wire import events as wire_events
from server.wire.chat_chunks import chunk_payloads, completion, merge_tool_calls, model_object
from server.wire.errors import ProtocolError

S = "AbCdEfGh12345678"
IDENTITY = ("chatcmpl-x", 1700000000, "m")
CALL_HEAD = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "f", "arguments": ""},
}
CALL_ARGS = {"index": 0, "function": {"arguments": '{"a": 1}'}}


def chunks(event: dict, include_usage: bool = False) -> list:
    return [
        p if p == "[DONE]" else json.loads(p)
        for p in chunk_payloads(event, *IDENTITY, include_usage)
    ]


def test_start_delta_done() -> None:
    (start,) = chunks(wire_events.start_event(S, "m"))
    assert start["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert (start["id"], start["created"], start["model"]) == IDENTITY
    assert start["object"] == "chat.completion.chunk"
    (delta,) = chunks(wire_events.delta_event(S, 1, "Hi"))
    assert delta["choices"][0] == {"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}
    done, usage, end = chunks(
        wire_events.done_event(S, 2, "length", usage={"total_tokens": 3}), include_usage=True
    )
    assert done["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == [] and usage["usage"] == {"total_tokens": 3}
    assert end == "[DONE]"
    assert len(chunks(wire_events.done_event(S, 2, "stop"))) == 2  # no usage chunk unless asked


def test_tool_calls_refusal_and_logprobs_are_relayed() -> None:
    event = wire_events.delta_event(S, 1, "", tool_calls=[CALL_HEAD])
    (chunk,) = chunks(event)
    assert chunk["choices"][0]["delta"] == {"tool_calls": [CALL_HEAD]}  # no empty content
    (chunk,) = chunks(wire_events.delta_event(S, 2, "", refusal="no"))
    assert chunk["choices"][0]["delta"] == {"refusal": "no"}
    logprobs = {
        "content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]
    }
    (chunk,) = chunks(wire_events.delta_event(S, 3, "Hi", logprobs=logprobs))
    assert chunk["choices"][0]["logprobs"] == logprobs
    for reason in ("tool_calls", "content_filter"):
        choice = chunks(wire_events.done_event(S, 4, reason))[0]["choices"][0]
        assert choice["finish_reason"] == reason


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (wire_events.done_event(S, 5, "cancelled"), "cancelled"),
        (wire_events.error_event(S, 5, "upstream_timeout", "slow"), "upstream_timeout"),
    ],
)
def test_a_stream_that_did_not_finish_ends_with_an_error_object(event: dict, code: str) -> None:
    error, end = chunks(event)  # no finish_reason chunk: a cut answer must not look finished
    assert error["error"]["code"] == code and error["error"]["message"]
    assert end == "[DONE]"
    with pytest.raises(ProtocolError) as raised:
        completion([wire_events.start_event(S, "m"), event], *IDENTITY)
    assert raised.value.code == code
    assert raised.value.status == (503 if code == "cancelled" else 502)


def test_merge_tool_calls_joins_fragments_by_index() -> None:
    second = {"index": 1, "id": "call_2", "function": {"name": "g", "arguments": "{}"}}
    assert merge_tool_calls([CALL_HEAD, second, CALL_ARGS]) == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]


def test_completion_folds_the_log() -> None:
    events = [
        wire_events.start_event(S, "m"),
        wire_events.delta_event(S, 1, "", tool_calls=[CALL_HEAD]),
        wire_events.delta_event(S, 2, "", tool_calls=[CALL_ARGS]),
        wire_events.done_event(S, 3, "tool_calls", usage={"total_tokens": 2}),
    ]
    body = completion(events, *IDENTITY)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["logprobs"] is None
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
        ],
    }
    assert body["usage"] == {"total_tokens": 2} and body["object"] == "chat.completion"
    text = completion(
        [
            wire_events.start_event(S, "m"),
            wire_events.delta_event(S, 1, "Hi"),
            wire_events.done_event(S, 2, "stop"),
        ],
        *IDENTITY,
    )
    assert text["choices"][0]["message"]["content"] == "Hi"
    assert model_object("m")["id"] == "m"
