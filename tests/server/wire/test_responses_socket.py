"""Pure tests of the Responses API's WebSocket messages (server/wire/responses_socket.py):
``response.create`` parsed whole, cut anywhere, and with trailing data; lanes; the
``error`` event."""

from __future__ import annotations

import json

import pytest

from server.wire.errors import ProtocolError
from server.wire.responses_socket import CreateMessage, error_event, parse_create

CREATE = {"type": "response.create", "model": "any", "input": "hi", "max_output_tokens": 5}


def code_of(text: str) -> tuple[str, str | None]:
    with pytest.raises(ProtocolError) as info:
        parse_create(text)
    return info.value.code, info.value.param


def test_a_create_without_a_lane() -> None:
    assert parse_create(json.dumps(CREATE)) == CreateMessage(
        None, {"model": "any", "input": "hi", "max_output_tokens": 5}
    )


def test_a_create_on_a_lane_leaves_type_and_stream_id_out_of_the_fields() -> None:
    parsed = parse_create(json.dumps({**CREATE, "stream_id": "lane-1.a_B"}))
    assert parsed.lane == "lane-1.a_B"
    assert parsed.fields == {"model": "any", "input": "hi", "max_output_tokens": 5}
    assert parse_create(json.dumps({**CREATE, "stream_id": None})).lane is None


def test_every_cut_of_a_message_is_invalid_json() -> None:
    text = json.dumps({**CREATE, "stream_id": "L"})
    for end in range(len(text)):  # byte by byte: only the whole message parses
        assert code_of(text[:end]) == ("invalid_json", None), text[:end]
    assert parse_create(text).lane == "L"


@pytest.mark.parametrize("trailing", ["x", "{}", ' {"type": "response.create"}', "]"])
def test_trailing_data_is_invalid_json(trailing: str) -> None:
    assert code_of(json.dumps(CREATE) + trailing) == ("invalid_json", None)


@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("[1]", "invalid_message", None),
        ('"response.create"', "invalid_message", None),
        ("{}", "invalid_message", "type"),
        ('{"type": 5}', "invalid_message", "type"),
        ('{"type": "response.cancel"}', "unknown_event_type", "type"),
        ('{"input": "x", "type": "RESPONSE.CREATE"}', "unknown_event_type", "type"),
        ("[" * 100 + "]" * 100, "invalid_json", None),
        ('{"type": "response.create", "a": NaN}', "invalid_json", None),
    ],
)
def test_messages_that_are_no_create(text: str, code: str, param: str | None) -> None:
    assert code_of(text) == (code, param)


@pytest.mark.parametrize("lane", ["", "a b", "x" * 257, 5, ["L"], "é", 'q"'])
def test_bad_lanes(lane: object) -> None:
    assert code_of(json.dumps({**CREATE, "stream_id": lane})) == (
        "invalid_stream_id",
        "stream_id",
    )


def test_the_error_event_is_openais_with_the_lane() -> None:
    exc = ProtocolError("invalid_parameter", "no", param="stream")
    assert error_event(exc, "L") == {
        "type": "error",
        "status": 400,
        "error": {"message": "no", "type": "invalid_request_error", "param": "stream",
                  "code": "invalid_parameter"},
        "stream_id": "L",
    }  # fmt: skip
    failed = error_event(ProtocolError("internal_error", "the server failed", 500), None)
    assert "stream_id" not in failed and failed["error"]["type"] == "server_error"
