"""The resume catch-up (responses_state.catch_up) and the frames that follow it,
for every ``starting_after`` of a log with text, a refusal and tool calls:
exactly the events after it, each once. No server: a StreamLog and the frames."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from server.core.log import StreamLog
from server.core.responses_state import catch_up
from server.handlers.responses import ResponsesFrames
from server.wire import errors
from server.wire import events as wire
from server.wire.responses_events import ResponseView

S = "AbCdEfGh12345678abcdef"
BASE = {"id": "resp_" + S, "created_at": 0, "model": "m"}
CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}


def make_log(ended: bool) -> StreamLog:
    log = StreamLog(S, "m")
    log.append(wire.start_event(S, "m"))
    pieces: list[dict[str, Any]] = [
        {"content": "Hel"},
        {"content": "lo"},
        {"content": "", "refusal": "no"},
        {"content": " again"},
        {"content": "", "tool_calls": [CALL]},
        {"content": "", "tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
    ]
    for piece in pieces:
        content = piece.pop("content")
        log.append(wire.delta_event(S, log.last_seq + 1, content, **piece))
    if ended:
        log.append(wire.done_event(S, log.last_seq + 1, "tool_calls"))
    return log


def parse(sse: bytes) -> list[dict[str, Any]]:
    return [json.loads(data) for data in re.findall(rb"^data: (.*)$", sse, re.M)]


def everything(log: StreamLog) -> list[dict[str, Any]]:
    frames = ResponsesFrames(ResponseView(BASE, S))
    return parse(frames(0, log.read(-1, 1 << 30)))


@pytest.mark.parametrize("ended", [True, False])
def test_every_starting_after_resumes_exactly(ended: bool) -> None:
    log = make_log(ended)
    full = everything(log)
    assert [event["sequence_number"] for event in full] == list(range(len(full)))
    for after in range(-1, len(full)):
        view = ResponseView(BASE, S)
        seq, pending = catch_up(view, log, after)
        frame = ResponsesFrames(view)
        if pending:  # as _Streaming.follow relays it
            frame, seq = ResponsesFrames(view, pending, replay=seq), seq - 1
        rest = parse(frame(seq + 1, log.read(seq, 1 << 30))) if seq < log.last_seq else []
        assert rest == full[after + 1 :], after


def test_starting_after_beyond_what_was_made_is_refused() -> None:
    for ended in (True, False):
        log = make_log(ended)
        total = len(everything(log))
        with pytest.raises(errors.ProtocolError) as info:
            catch_up(ResponseView(BASE, S), log, total)
        assert info.value.param == "starting_after"
