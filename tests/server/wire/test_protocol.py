"""Pure tests of the wire contract module: no server, no event loop."""

from __future__ import annotations

import json
from dataclasses import replace

import hypothesis
import hypothesis.strategies
import pytest

from server.backends.base import ChatRequest, Delta
from server.config import Settings
from server.wire import events, ids, limits, strict_json
from server.wire import messages as wire_messages
from server.wire.errors import ProtocolError
from server.wire.limits import Limits

LIMITS = Limits(max_prompt_bytes=64, max_tokens_limit=100, default_max_tokens=10)
STREAM = "AbCdEfGh12345678_-xyz"


def test_events_carry_type_stream_and_seq() -> None:
    assert events.start_event(STREAM, "m") == {
        "type": "start",
        "stream": STREAM,
        "seq": 0,
        "model": "m",
    }
    assert events.delta_event(STREAM, 3, "hi") == {
        "type": "delta",
        "stream": STREAM,
        "seq": 3,
        "content": "hi",
    }
    assert events.done_event(STREAM, 4, "length")["finish_reason"] == "length"
    error = events.error_event(None, None, "invalid_json", "bad")
    assert error == {
        "type": "error",
        "stream": None,
        "seq": None,
        "code": "invalid_json",
        "message": "bad",
    }


def test_done_rejects_unknown_finish_reason() -> None:
    with pytest.raises(ValueError):
        events.done_event(STREAM, 1, "tired")


def test_terminal_events() -> None:
    assert events.is_terminal(events.done_event(STREAM, 1, "stop"))
    assert events.is_terminal(events.error_event(STREAM, 1, "x", "y"))
    assert not events.is_terminal(events.error_event(None, None, "x", "y"))
    assert not events.is_terminal(events.delta_event(STREAM, 1, "x"))


@pytest.mark.parametrize("content", ["line\nbreak", "cr\rlf\r\n", "naïve ☃ 🎉", "\u2028"])
def test_dumps_is_one_line_and_round_trips(content: str) -> None:
    event = events.delta_event(STREAM, 1, content)
    text = events.dumps(event)
    assert "\n" not in text and "\r" not in text
    assert json.loads(text) == event


def test_event_id_round_trip() -> None:
    assert ids.parse_event_id(ids.format_event_id(STREAM, 42)) == (STREAM, 42)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "nocolon",
        f"{STREAM}:",
        f"{STREAM}:-1",
        f"{STREAM}:1.5",
        "short:1",
        f"{STREAM}:99999999999",
        f"bad id!{STREAM}:1",
    ],
)
def test_malformed_event_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        ids.parse_event_id(bad)
    assert raised.value.code == "invalid_last_event_id"
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("prompt", "code", "status"),
    [
        (None, "missing_prompt", 400),
        ("", "missing_prompt", 400),
        ("   ", "missing_prompt", 400),
        (5, "invalid_prompt", 400),
        ("x" * 65, "prompt_too_long", 413),
        ("é" * 33, "prompt_too_long", 413),
    ],
)
def test_bad_prompts(prompt: object, code: str, status: int) -> None:
    with pytest.raises(ProtocolError) as raised:
        limits.validate_prompt(prompt, LIMITS)
    assert (raised.value.code, raised.value.status) == (code, status)


def test_prompt_limit_counts_utf8_bytes() -> None:
    assert limits.validate_prompt("x" * 64, LIMITS) == "x" * 64


@pytest.mark.parametrize(
    "value", ["abc", "1.5", "-1", "0", "101", 0, 101, True, 2.0, [], "", "²", "٣", "1_0"]
)
def test_bad_max_tokens(value: object) -> None:
    with pytest.raises(ProtocolError) as raised:
        limits.validate_max_tokens(value, LIMITS, from_query=True)
    assert raised.value.code == "invalid_max_tokens"


@pytest.mark.parametrize(("value", "expected"), [(None, 10), ("7", 7), (" 7 ", 7), (100, 100)])
def test_good_max_tokens_from_a_query(value: object, expected: int) -> None:
    assert limits.validate_max_tokens(value, LIMITS, from_query=True) == expected


def test_json_max_tokens_must_be_a_number_not_a_string() -> None:
    assert limits.validate_max_tokens(7, LIMITS) == 7
    with pytest.raises(ProtocolError):
        limits.validate_max_tokens("7", LIMITS)


def test_parse_start_resume_cancel() -> None:
    start = wire_messages.parse_client_message(
        '{"type":"start","prompt":"hi","max_tokens":5,"ref":{"n":1}}', LIMITS
    )
    assert start == wire_messages.StartRequest(ChatRequest.from_prompt("hi", 5), ref={"n": 1})
    assert isinstance(start, wire_messages.StartRequest)
    assert (start.prompt, start.max_tokens) == ("hi", 5)  # what the benchmark peers read
    resume = wire_messages.parse_client_message(
        json.dumps({"type": "resume", "stream": STREAM, "after": 3}), LIMITS
    )
    assert resume == wire_messages.ResumeRequest(stream=STREAM, after=3)
    cancel_text = json.dumps({"type": "cancel", "stream": STREAM})
    cancel = wire_messages.parse_client_message(cancel_text, LIMITS)
    assert cancel == wire_messages.CancelRequest(stream=STREAM)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "invalid_json"),
        ('{"type":"start","prompt":"\\ud800"}', "invalid_json"),
        ('{"type":"start","prompt":"hi","ref":NaN}', "invalid_json"),
        ('{"type":"start","prompt":"hi","ref":-Infinity}', "invalid_json"),
        ('{"type":"start","prompt":"hi","ref":1e999}', "invalid_json"),
        ("[1,2]", "invalid_message"),
        ('"start"', "invalid_message"),
        ("{}", "invalid_message"),
        ('{"type":"fly"}', "unknown_type"),
        ('{"type":"start"}', "missing_prompt"),
        ('{"type":"start","prompt":"hi","max_tokens":"many"}', "invalid_max_tokens"),
        ('{"type":"resume","stream":"x"}', "invalid_after"),
        ('{"type":"resume","after":1}', "invalid_stream"),
        ('{"type":"resume","stream":"short","after":1}', "invalid_stream"),
        ('{"type":"resume","stream":"AbCdEfGh12345678","after":-2}', "invalid_after"),
        ('{"type":"cancel"}', "invalid_stream"),
        ("[" * 100000, "invalid_json"),
        ('{"type":"start","prompt":7}', "invalid_prompt"),
        ('{"type":"start","prompt":"hi","messages":[]}', "invalid_message"),
        ('{"type":"start","messages":[]}', "invalid_messages"),
        ('{"type":"start","prompt":"hi","temperature":"hot"}', "invalid_parameter"),
        ('{"type":"start","prompt":"hi","n":2}', "unsupported_parameter"),
    ],
)
def test_bad_client_messages(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        wire_messages.parse_client_message(text, LIMITS)
    assert raised.value.code == code
    assert raised.value.message


def test_bad_message_keeps_its_ref_for_the_error_reply() -> None:
    with pytest.raises(ProtocolError) as raised:
        wire_messages.parse_client_message('{"type":"start","prompt":"","ref":7}', LIMITS)
    assert raised.value.ref == 7


def test_dumps_refuses_non_json_numbers() -> None:
    with pytest.raises(ValueError):
        events.dumps({"ref": float("nan")})


def test_loads_strict_accepts_ordinary_json() -> None:
    assert strict_json.loads_strict('{"a": [1, 2.5, "é", null, true]}') == {
        "a": [1, 2.5, "é", None, True]
    }


@hypothesis.given(
    content=hypothesis.strategies.text(),
    seq=hypothesis.strategies.integers(min_value=1, max_value=10**6),
    t=hypothesis.strategies.floats(min_value=0, max_value=4e9),
)
def test_a_delta_record_restores_the_exact_json_of_the_event(
    content: str, seq: int, t: float
) -> None:
    stream = "AbCdEfGh12345678_-"
    event = events.dumps(events.delta_event(stream, seq, content, t=t))
    record = events.delta_record(content, t)
    assert events.is_delta_record(record)
    restored = events.delta_from_record(events.delta_head(stream), seq, record)
    assert restored == event.encode("utf-8", "surrogatepass")
    # the same record read in place from a log's buffer, between other records
    buffer = bytearray(b'1.5,"x"' + record + b"{}")
    start = len(b'1.5,"x"')
    in_place = events.delta_from_record(
        events.delta_head(stream), seq, buffer, start, start + len(record)
    )
    assert in_place == restored


def test_start_carries_a_conversation_and_its_parameters() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "  Hi  "},
        {"role": "assistant", "content": "Hello."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And "}, {"type": "text", "text": "then?"}],
        },
    ]
    start = wire_messages.parse_client_message(
        json.dumps(
            {"type": "start", "messages": messages, "temperature": 0.5, "stop": "x", "ref": "r"}
        ),
        LIMITS,
    )
    assert isinstance(start, wire_messages.StartRequest)
    assert start.ref == "r"
    assert start.chat.messages[1]["content"] == "  Hi  "  # exactly as sent
    assert start.chat.messages[3]["content"] == "And then?"
    assert start.chat.params == {"temperature": 0.5, "stop": ["x"]}
    assert start.chat.max_tokens == LIMITS.default_max_tokens


def test_a_backend_without_a_parameter_refuses_it_by_name() -> None:
    limits = replace(Settings().limits, supported_parameters=frozenset({"stop"}))
    text = json.dumps({"type": "start", "prompt": "hi", "stop": "x", "seed": 1})
    with pytest.raises(ProtocolError) as raised:
        wire_messages.parse_client_message(text, limits)
    assert raised.value.code == "unsupported_parameter" and "'seed'" in raised.value.message


def test_delta_events_from_pieces() -> None:
    assert events.delta_event_from_piece(STREAM, 1, "hi") == events.delta_event(STREAM, 1, "hi")
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    event = events.delta_event_from_piece(
        STREAM, 2, Delta(tool_calls=(call,), logprobs={"content": []}, refusal="no")
    )
    assert event == {
        "type": "delta",
        "stream": STREAM,
        "seq": 2,
        "content": "",  # always there, so text-only clients keep working
        "tool_calls": [call],
        "refusal": "no",
        "logprobs": {"content": []},
    }
    assert not Delta() and Delta(content="x")


def test_new_finish_reasons() -> None:
    for reason in ("tool_calls", "content_filter"):
        assert events.done_event(STREAM, 3, reason)["finish_reason"] == reason
