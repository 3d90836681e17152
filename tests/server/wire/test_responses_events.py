"""Pure tests of the Responses view of a stream log: the numbered events, the
Response object, and the official SDK's own accumulator (ResponseStreamState)
and SSE decoder reading them: whole, byte by byte, and with trailing data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import omit
from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from server.wire import events as wire
from server.wire.responses_events import (
    ResponseView,
    ViewState,
    answer_message,
    encode_sse,
    fold,
    plain_delta,
    usage,
)

S = "AbCdEfGh12345678"
BASE = {"id": "resp_" + S, "created_at": 1700000000, "model": "m", "tools": [], "metadata": {}}
CALL_HEAD = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "f", "arguments": ""},
}
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def log(*deltas: dict[str, Any], end: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    made = [wire.start_event(S, "m")]
    for seq, fields in enumerate(deltas, 1):
        made.append(wire.delta_event(S, seq, fields.pop("content", ""), **fields))
    made.append(end or wire.done_event(S, len(made), "stop", usage=USAGE))
    return made


def view_events(events: list[dict[str, Any]]) -> tuple[ResponseView, list[dict[str, Any]]]:
    view = ResponseView(BASE, S)
    out: list[dict[str, Any]] = []
    for event in events:
        out += view.feed(event)
    return view, out


def accumulate(made: list[dict[str, Any]]) -> Any:
    """What the SDK's responses.stream() helper makes of these events."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=[], text_format=omit)
    for event in made:
        typed = construct_type(type_=ResponseStreamEvent, value=json.loads(json.dumps(event)))
        state.handle_event(typed)  # type: ignore[arg-type]
    return state._completed_response


def test_text_is_one_message_numbered_from_zero() -> None:
    view, made = view_events(log({"content": "Hel"}, {"content": "lo"}))
    assert [event["sequence_number"] for event in made] == list(range(len(made)))
    assert [event["type"] for event in made] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert made[0]["response"]["status"] == "in_progress" and made[0]["response"]["output"] == []
    final = made[-1]["response"]
    assert final["status"] == "completed" and final["id"] == BASE["id"]
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"] == usage(USAGE) and final["usage"]["total_tokens"] == 5
    assert made[6]["text"] == "Hello" and made[8]["item"]["status"] == "completed"
    assert view.state is ViewState.ENDED
    response = accumulate(made)
    assert response.output_text == "Hello" and response.status == "completed"


def test_function_calls_are_their_own_items_after_the_text() -> None:
    second = {
        "index": 1,
        "id": "call_2",
        "type": "function",
        "function": {"name": "g", "arguments": "{}"},
    }
    _, made = view_events(
        log(
            {"content": "Let me check."},
            {"tool_calls": [CALL_HEAD]},
            {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}, second]},
            end=wire.done_event(S, 5, "tool_calls"),
        )
    )
    kinds = [event["type"] for event in made]
    assert kinds.count("response.output_item.added") == 3
    assert kinds.index("response.output_item.done") < kinds.index(
        "response.function_call_arguments.delta"
    )
    final = made[-1]["response"]
    assert [item["type"] for item in final["output"]] == [
        "message",
        "function_call",
        "function_call",
    ]
    call = final["output"][1]
    assert (call["call_id"], call["name"], call["arguments"]) == ("call_1", "f", '{"a": 1}')
    assert final["output"][2]["arguments"] == "{}"
    done = [e for e in made if e["type"] == "response.function_call_arguments.done"]
    assert [e["arguments"] for e in done] == ['{"a": 1}', "{}"]
    response = accumulate(made)
    assert [item.type for item in response.output] == ["message", "function_call", "function_call"]
    assert response.output[1].arguments == '{"a": 1}'


def test_a_refusal_is_a_refusal_part() -> None:
    _, made = view_events(log({"refusal": "I can"}, {"refusal": "not."}))
    kinds = [event["type"] for event in made]
    assert kinds.count("response.refusal.delta") == 2 and "response.refusal.done" in kinds
    part = made[-1]["response"]["output"][0]["content"][0]
    assert part == {"type": "refusal", "refusal": "I cannot."}
    assert accumulate(made).output[0].content[0].refusal == "I cannot."


def test_logprobs_ride_on_the_text_deltas() -> None:
    entry = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}
    _, made = view_events(log({"content": "Hi", "logprobs": {"content": [entry]}}))
    delta = next(e for e in made if e["type"] == "response.output_text.delta")
    assert delta["logprobs"] == [entry]
    assert made[-1]["response"]["output"][0]["content"][0]["logprobs"] == [entry]


@pytest.mark.parametrize(
    ("end", "terminal", "status", "detail"),
    [
        (wire.done_event(S, 2, "length"), "response.incomplete", "incomplete", "max_output_tokens"),
        (
            wire.done_event(S, 2, "content_filter"),
            "response.incomplete",
            "incomplete",
            "content_filter",
        ),
        (wire.done_event(S, 2, "cancelled"), "response.failed", "cancelled", "cancelled"),
        (
            wire.error_event(S, 2, "upstream_error", "boom"),
            "response.failed",
            "failed",
            "upstream_error",
        ),
    ],
)
def test_unfinished_ends(end: dict[str, Any], terminal: str, status: str, detail: str) -> None:
    _, made = view_events(log({"content": "Hi"}, end=end))
    assert made[-1]["type"] == terminal
    response = made[-1]["response"]
    assert response["status"] == status
    assert (response["incomplete_details"] or response["error"])[
        "reason" if status == "incomplete" else "code"
    ] == detail
    assert response["output"][0]["status"] == "incomplete"
    assert [e["sequence_number"] for e in made] == list(range(len(made)))


def test_the_view_is_deterministic_and_nothing_follows_the_end() -> None:
    events = log({"content": "a"}, {"tool_calls": [CALL_HEAD]}, {"content": "b"})
    _, first = view_events(events)
    _, again = view_events(events)
    assert first == again
    view = ResponseView(BASE, S)
    assert fold(view, events) == len(first)
    assert view.feed(wire.delta_event(S, 9, "late")) == []
    assert view.response()["output"][2]["content"][0]["text"] == "b"  # text after a call: new item


def test_answer_message() -> None:
    events = log({"content": "Hi "}, {"content": "there"}, {"tool_calls": [CALL_HEAD]})
    assert answer_message(events) == {
        "role": "assistant",
        "content": "Hi there",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
        ],
    }
    assert answer_message(log()) is None


def decoded(chunks: list[bytes]) -> list[tuple[str | None, dict[str, Any]]]:
    return [(sse.event, sse.json()) for sse in SSEDecoder().iter_bytes(iter(chunks))]


def test_sse_is_read_by_the_sdk_whole_and_byte_by_byte() -> None:
    _, made = view_events(log({"content": "line\nbreak é"}, {"content": "日本"}))
    data = encode_sse(made)
    expected = [(event["type"], event) for event in made]
    assert decoded([data]) == expected
    assert decoded([data[i : i + 1] for i in range(len(data))]) == expected
    assert decoded([data + b'event: response.x\ndata: {"a"']) == expected  # trailing partial
    assert data.count(b"\n\n") == len(made) and b"\r" not in data


@given(contents=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8))
@settings(max_examples=200, deadline=None, database=None)
def test_the_fast_path_makes_the_bytes_feed_makes(contents: list[str]) -> None:
    """A plain text delta read with the string scanner gives exactly the JSON the
    general path gives, whatever the text (quotes, backslashes, controls, any script)."""
    head = wire.delta_head(S)
    texts = [
        wire.delta_from_record(head, seq, wire.delta_record(content, 1795321197.25))
        for seq, content in enumerate(contents, 1)
    ]
    slow, fast = ResponseView(BASE, S), ResponseView(BASE, S)
    start = wire.start_event(S, "m")
    slow.feed(start)
    fast.feed(start)
    for text in texts:
        expected = [wire.dumps(event) for event in slow.feed(json.loads(text))]
        plain = plain_delta(text)
        assert plain is not None and plain[0] == json.loads(text)["content"]
        made = fast.text_delta(*plain)
        if made is None:  # the first delta opens the message: the general path
            made_all = [wire.dumps(event) for event in fast.feed(json.loads(text))]
        else:
            made_all = [made]
        assert made_all == expected
    end = wire.done_event(S, len(texts) + 1, "stop")
    assert slow.feed(end) == fast.feed(end)


def test_only_plain_text_deltas_take_the_fast_path() -> None:
    rich = [
        wire.delta_event(S, 1, "", tool_calls=[CALL_HEAD]),
        wire.delta_event(S, 1, "", refusal="no"),
        wire.delta_event(S, 1, "Hi", logprobs={"content": []}),
        wire.start_event(S, "m"),
        wire.done_event(S, 2, "stop"),
    ]
    for event in rich:
        event["t"] = 1.5
        assert plain_delta(wire.dumps(event).encode()) is None, event
    plain = wire.dumps({**wire.delta_event(S, 1, 'say "hi" \\ ,"t":'), "t": 1.5}).encode()
    assert plain_delta(plain) == ('say "hi" \\ ,"t":', json.dumps('say "hi" \\ ,"t":'))


def test_an_empty_plain_delta_makes_no_event_on_either_path() -> None:
    """The fast path and feed() agree on an empty text delta: no event, so a
    resume's catch-up (feed) and a live relay (the fast path) number alike."""
    head = wire.delta_head(S)
    texts = [
        wire.dumps(wire.start_event(S, "m")).encode(),
        wire.delta_from_record(head, 1, wire.delta_record("Hi", 1.5)),
        wire.delta_from_record(head, 2, wire.delta_record("", 1.5)),
        wire.delta_from_record(head, 3, wire.delta_record(" there", 1.5)),
        wire.dumps(wire.done_event(S, 4, "stop")).encode(),
    ]
    fed = ResponseView(BASE, S)
    expected = [wire.dumps(event) for text in texts for event in fed.feed(json.loads(text))]
    fast = ResponseView(BASE, S)
    made = []
    for text in texts:
        plain = plain_delta(text)
        one = fast.text_delta(*plain) if plain is not None else None
        made += [one] if one is not None else [wire.dumps(e) for e in fast.feed(json.loads(text))]
    assert made == expected
    framed = ResponseView(BASE, S).frame_texts(texts)
    assert [text for _, text in framed] == expected
    assert [kind for kind, _ in framed] == [json.loads(text)["type"] for text in expected]


def test_frame_texts_adds_a_tail_to_every_event() -> None:
    head = wire.delta_head(S)
    texts = [
        wire.dumps(wire.start_event(S, "m")).encode(),
        wire.delta_from_record(head, 1, wire.delta_record("Hi", 1.5)),
        wire.delta_from_record(head, 2, wire.delta_record(" you", 1.5)),
    ]
    plain = ResponseView(BASE, S).frame_texts(texts)
    tailed = ResponseView(BASE, S).frame_texts(texts, ',"stream_id":"lane-1"')
    for (kind, text), (tail_kind, tail_text) in zip(plain, tailed, strict=True):
        assert kind == tail_kind
        assert json.loads(tail_text) == {**json.loads(text), "stream_id": "lane-1"}
