"""Pure tests of WebSocketChatTransport's frames (server/wire/ui_message_socket.py)."""

from __future__ import annotations

import json

import pytest

from server.wire.limits import Limits
from server.wire.ui_message_socket import (
    AbortFrame,
    FrameError,
    ResumeFrame,
    SendFrame,
    error_frame,
    parse_client_frame,
    request_frame,
)

LIMITS = Limits(max_prompt_bytes=32 * 1024)
MESSAGES = [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]


def frame(**fields: object) -> str:
    return json.dumps(fields)


def test_send_as_the_sdk_sends_it() -> None:
    # JSON.stringify drops messageId and metadata when undefined
    parsed = parse_client_frame(
        frame(type="send", requestId="r1", id="c1", trigger="submit-message", messages=MESSAGES,
              headers={}, body={"max_tokens": 5, "seed": 1}),
        LIMITS,
    )  # fmt: skip
    assert isinstance(parsed, SendFrame)
    assert parsed.request_id == "r1" and parsed.request.chat_id == "c1"
    assert parsed.request.chat.max_tokens == 5 and parsed.request.chat.params == {"seed": 1}
    assert parsed.request.chat.messages == ({"role": "user", "content": "hi"},)


def test_resume_and_abort() -> None:
    full = parse_client_frame(
        frame(type="resume", requestId="r2", id="c1", headers={}, body={}), LIMITS
    )
    assert full == ResumeFrame("r2", "c1", -1)
    after = parse_client_frame(
        frame(type="resume", requestId="r3", id="c1", lastSequence=7), LIMITS
    )
    assert after == ResumeFrame("r3", "c1", 7)
    assert parse_client_frame(frame(type="abort", requestId="r4"), LIMITS) == AbortFrame("r4")


@pytest.mark.parametrize(
    ("text", "request_id", "code"),
    [
        ("not json", "", "invalid_json"),
        ("[1]", "", "invalid_frame"),
        (frame(type="send"), "", "invalid_request_id"),
        (frame(type="send", requestId=5), "", "invalid_request_id"),
        (frame(type="nope", requestId="r"), "r", "unknown_type"),
        (frame(type="send", requestId="r", id="c"), "r", "invalid_messages"),
        (frame(type="send", requestId="r", id="c", messages=MESSAGES, body=[]), "r",
         "invalid_body"),
        (frame(type="resume", requestId="r", id="c", lastSequence=-1), "r", "invalid_sequence"),
        (frame(type="resume", requestId="r", id="c", lastSequence=True), "r", "invalid_sequence"),
        (frame(type="resume", requestId="r"), "r", "invalid_chat_id"),
        ("[" * 100 + "]" * 100, "", "invalid_json"),
    ],
)  # fmt: skip
def test_malformed_frames_name_their_request(text: str, request_id: str, code: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text, LIMITS)
    assert (caught.value.request_id, caught.value.code) == (request_id, code)


def test_server_frames() -> None:
    assert request_frame("start", "r1") == '{"type":"start","requestId":"r1"}'
    assert json.loads(request_frame("no-active", 'a"b')) == {
        "type": "no-active",
        "requestId": 'a"b',
    }
    assert json.loads(error_frame("", "bad")) == {
        "type": "error",
        "requestId": "",
        "errorText": "bad",
    }


def test_the_frame_limit_counts_bytes_and_follows_max_body_bytes() -> None:
    small = Limits(max_prompt_bytes=32 * 1024, max_body_bytes=1000)
    text = frame(type="abort", requestId="r", pad="x" * 900)
    assert isinstance(parse_client_frame(text, small), AbortFrame)
    # 400 characters, 1200 bytes of UTF-8: over the limit (characters are not bytes)
    wide = frame(type="abort", requestId="r", pad="\u20ac" * 400)
    wide = wide.encode().decode("unicode_escape")
    assert len(wide) < 1000 < len(wide.encode())
    with pytest.raises(FrameError) as info:
        parse_client_frame(wide, small)
    assert info.value.code == "frame_too_large"


@pytest.mark.parametrize(
    "text, code",
    [("[1]", "invalid_frame"), ("{", "invalid_json"), ("[" * 65 + "]" * 65, "invalid_json")],
)
def test_frames_that_are_no_json_object(text: str, code: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_client_frame(text, LIMITS)
    assert info.value.code == code and info.value.request_id == ""
