"""Pure tests of the UI message view (server/wire/ui_message_chunks.py): whole vectors
of a log's events to chunks and SSE bytes, the same bytes however the relay batches
the events, and the ai package's own parser (parseJsonEventStream with
uiMessageChunkSchema, fed one byte at a time) reading them back."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server.wire import events
from server.wire.ui_message_chunks import SSEChunkFrames, UIMessageView
from server.wire.ui_message_socket import SocketChunks

S = "AbCdEfGh12345678"
NODE_DIR = Path(__file__).resolve().parents[2] / "node"
CALL_HEAD = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": ""},
}


def log(*middle: dict[str, Any], end: dict[str, Any] | None = None) -> list[bytes]:
    """A stream's events as the log's JSON texts, seq 0.. in order."""
    items = [events.start_event(S, "m", created=1), *middle]
    items.append(end if end is not None else events.done_event(S, 0, "stop"))
    for seq, item in enumerate(items):
        item["seq"] = seq
    return [events.dumps(item).encode() for item in items]


def text(content: str) -> dict[str, Any]:
    return events.delta_event(S, 0, content, t=1.5)


def tool(*fragments: dict[str, Any]) -> dict[str, Any]:
    return {**events.delta_event(S, 0, ""), "tool_calls": list(fragments)}


def view_all(texts: list[bytes]) -> list[dict[str, Any]]:
    view = UIMessageView("msg-1")
    return [json.loads(chunk) for t in texts for chunk in view.chunks(t)]


TEXT_LOG = log(
    text("Hel"),
    text('lo "wo\nrld" ünï ✓'),
    end=events.done_event(S, 0, "length", usage={"prompt_tokens": 2, "completion_tokens": 2}),
)
TEXT_CHUNKS = [
    {"type": "start", "messageId": "msg-1", "messageMetadata": {"model": "m"}},
    {"type": "start-step"},
    {"type": "text-start", "id": "text-0"},
    {"type": "text-delta", "id": "text-0", "delta": "Hel"},
    {"type": "text-delta", "id": "text-0", "delta": 'lo "wo\nrld" ünï ✓'},
    {"type": "text-end", "id": "text-0"},
    {"type": "finish-step"},
    {
        "type": "finish",
        "finishReason": "length",
        "messageMetadata": {"model": "m", "usage": {"prompt_tokens": 2, "completion_tokens": 2}},
    },
]
TOOL_LOG = log(
    tool(CALL_HEAD),
    tool({"index": 0, "function": {"arguments": '{"city": '}}),
    tool({"index": 0, "function": {"arguments": '"Paris"}'}}),
    end=events.done_event(S, 0, "tool_calls"),
)
TOOL_CHUNKS = [
    {"type": "start", "messageId": "msg-1", "messageMetadata": {"model": "m"}},
    {"type": "start-step"},
    {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "get_weather"},
    {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '{"city": '},
    {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '"Paris"}'},
    {
        "type": "tool-input-available",
        "toolCallId": "call_1",
        "toolName": "get_weather",
        "input": {"city": "Paris"},
    },
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "tool-calls", "messageMetadata": {"model": "m"}},
]


def test_text_answer_whole_vector() -> None:
    assert view_all(TEXT_LOG) == TEXT_CHUNKS


def test_tool_call_whole_vector() -> None:
    assert view_all(TOOL_LOG) == TOOL_CHUNKS


def test_sse_bytes_whole_and_the_same_for_every_batching() -> None:
    expected = "".join(f"data: {json.dumps(c, ensure_ascii=False, separators=(',', ':'))}\n\n"
                       for c in TEXT_CHUNKS) + "data: [DONE]\n\n"  # fmt: skip
    whole = SSEChunkFrames(UIMessageView("msg-1"))(0, TEXT_LOG)
    assert whole == expected.encode()
    for split in range(1, len(TEXT_LOG)):
        frames = SSEChunkFrames(UIMessageView("msg-1"))
        parts = frames(0, TEXT_LOG[:split]) + frames(split, TEXT_LOG[split:])
        assert parts == whole
    one_by_one = SSEChunkFrames(UIMessageView("msg-1"))
    assert b"".join(one_by_one(i, [t]) for i, t in enumerate(TEXT_LOG)) == whole
    assert whole.count(b"[DONE]") == 1 and b"\nid:" not in whole and b"event:" not in whole


def test_a_stop_ends_with_abort_and_keeps_the_partial_text() -> None:
    chunks = view_all(log(text("partial"), end=events.done_event(S, 0, "cancelled")))
    assert [c["type"] for c in chunks] == [
        "start", "start-step", "text-start", "text-delta", "text-end", "finish-step", "abort",
    ]  # fmt: skip
    assert chunks[-1] == {"type": "abort", "reason": "stopped"}


def test_an_error_is_an_error_chunk_then_finish_error() -> None:
    chunks = view_all(log(text("x"), end=events.error_event(S, 0, "upstream_error", "it failed")))
    assert chunks[-2:] == [
        {"type": "error", "errorText": "upstream_error: it failed"},
        {"type": "finish", "finishReason": "error"},
    ]


@pytest.mark.parametrize(
    ("reason", "shown"),
    [("stop", "stop"), ("length", "length"), ("tool_calls", "tool-calls"),
     ("content_filter", "content-filter")],
)  # fmt: skip
def test_finish_reasons(reason: str, shown: str) -> None:
    assert view_all(log(end=events.done_event(S, 0, reason)))[-1]["finishReason"] == shown


def test_bad_tool_arguments_are_a_tool_input_error() -> None:
    chunks = view_all(log(tool({**CALL_HEAD, "function": {"name": "f", "arguments": "{not json"}})))
    (error,) = [c for c in chunks if c["type"] == "tool-input-error"]
    assert error["input"] == "{not json" and error["toolName"] == "f"


def test_refusal_text_is_shown_as_text() -> None:
    chunks = view_all(log({**events.delta_event(S, 0, ""), "refusal": "I can't"}))
    assert {"type": "text-delta", "id": "text-0", "delta": "I can't"} in chunks


def test_socket_chunks_are_numbered_and_a_resume_skips_what_the_client_holds() -> None:
    frames = [json.loads(f) for f in SocketChunks(UIMessageView("msg-1"), "r1").frames(TEXT_LOG)]
    assert [f["sequence"] for f in frames[:-1]] == list(range(len(TEXT_CHUNKS)))
    assert [f["chunk"] for f in frames[:-1]] == TEXT_CHUNKS
    assert frames[-1] == {"type": "end", "requestId": "r1"}
    resumed = SocketChunks(UIMessageView("msg-1"), "r2", last_sequence=4).frames(TEXT_LOG)
    assert [json.loads(f).get("sequence") for f in resumed] == [5, 6, 7, None]


def test_the_ai_package_parses_the_bytes_one_at_a_time() -> None:
    """The SDK's parseJsonEventStream + uiMessageChunkSchema over the SSE body, and
    the schema over each WebSocket chunk: every chunk valid, equal to the view's."""
    node = shutil.which("node")
    assert node is not None, "node is not installed: bash scripts/test.sh installs it"
    logs = [TEXT_LOG, TOOL_LOG, log(text("a"), end=events.done_event(S, 0, "cancelled")),
            log(text("a"), end=events.error_event(S, 0, "boom", "failed"))]  # fmt: skip
    for texts in logs:
        body = SSEChunkFrames(UIMessageView("msg-1"))(0, texts).decode()
        socket = [
            json.dumps(json.loads(f)["chunk"])
            for f in SocketChunks(UIMessageView("msg-1"), "r").frames(texts)[:-1]
        ]
        done = subprocess.run(
            [node, "ui_chunks_check.mjs"],
            input=json.dumps({"sse": body, "chunks": socket}),
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert all(r["success"] for r in result["sse"] + result["chunks"]), result
        assert [r["value"] for r in result["sse"]] == view_all(texts)
        assert [r["value"] for r in result["chunks"]] == view_all(texts)


@pytest.mark.parametrize(
    "content",
    ["", "plain", 'a "quoted", "t":1} b', "back\\slash\\", 'x\\"tool_calls": []',
     "\n\r\t\u2028 ünï ✓ 😀", ',"content":"nested"', "\x00\x1f"],
)  # fmt: skip
def test_a_text_delta_as_the_log_keeps_it_gives_the_chunks_its_json_gives(content: str) -> None:
    """The log keeps a text delta as a record and sends delta_from_record's bytes;
    the view reads those without decoding them: the same chunks as from the JSON."""
    head = events.delta_head(S)
    sent = events.delta_from_record(head, 3, events.delta_record(content, 1700000000.25))
    assert json.loads(sent) == {"type": "delta", "stream": S, "seq": 3, "content": content,
                                "t": 1700000000.25}  # fmt: skip
    fast, slow = UIMessageView("m"), UIMessageView("m")
    for _ in range(2):  # the text part's start, then a delta alone
        assert fast.chunks(sent) == slow.event_chunks(json.loads(sent))
    piece = events.dumps({**json.loads(sent), "tool_calls": [CALL_HEAD]}).encode()
    assert UIMessageView("m").chunks(piece) == UIMessageView("m").event_chunks(json.loads(piece))
