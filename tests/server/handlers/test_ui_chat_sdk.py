"""The AI SDK's own client code (the npm ``ai`` package, unchanged; ``ws`` as its
WebSocket in Node) against ``/api/chat`` on both of its transports,
``DefaultChatTransport`` (SSE) and ``WebSocketChatTransport``: on one process,
and on two processes sharing a real redis-server with every resume and stop
sent to the other process (tests/node/ui_chat_check.mjs does the talking)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.redisutil import RedisServer
from support.server_process import ServerProcess

NODE_DIR = Path(__file__).resolve().parents[2] / "node"
GRACE = 0.5
SERVER_ARGS = (
    "--tokens-per-second", "60",
    "--first-token-latency", "0",
    "--chat-resume-grace", str(GRACE),
    "--streams-per-minute", "0",
    "--log-level", "warning",
)  # fmt: skip
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module", params=["one process", "two processes"])
def bases(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(A, B): the same process twice, or two processes sharing a redis-server."""
    if request.param == "one process":
        with ServerProcess(*SERVER_ARGS) as server:
            yield server.url, server.url
        return
    redis = RedisServer().start()
    try:
        with ServerProcess("--store", redis.url, *SERVER_ARGS) as a:
            with ServerProcess("--store", redis.url, *SERVER_ARGS) as b:
                yield a.url, b.url
    finally:
        redis.close()


def run(scenario: str, transport: str, bases: tuple[str, str], **options: Any) -> Any:
    node = shutil.which("node")
    assert node is not None, "node is not installed: bash scripts/test.sh installs it"
    done = subprocess.run(
        [node, "ui_chat_check.mjs", scenario, transport, *bases, json.dumps(options)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def text_parts(message: dict[str, Any]) -> str:
    return "".join(part["text"] for part in message["parts"] if part["type"] == "text")


TRANSPORTS = ["sse", "ws"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_send_and_a_second_turn(bases: tuple[str, str], transport: str) -> None:
    result = run("twoTurns", transport, bases)
    for turn in ("one", "two"):
        message, types = result[turn]["message"], result[turn]["types"]
        assert types[:3] == ["start", "start-step", "text-start"]
        assert types[-3:] == ["text-end", "finish-step", "finish"]
        assert types.count("text-delta") == 12
        assert message["role"] == "assistant" and text_parts(message)
        assert message["metadata"]["usage"]["completion_tokens"] == 12
    # the second turn sent the first answer back: another conversation, another answer
    assert text_parts(result["one"]["message"]) != text_parts(result["two"]["message"])


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("drop_at", [1, 4, 9])
def test_a_dropped_answer_resumes_on_the_other_process(
    bases: tuple[str, str], transport: str, drop_at: int
) -> None:
    result = run("resumeAfterDrop", transport, bases, dropAt=drop_at, body={"max_tokens": 20})
    assert result["seenBeforeDrop"] == drop_at
    assert result["resumed"] is not None, "reconnectToStream found no active answer"
    uncut, resumed = result["uncut"]["message"], result["resumed"]["message"]
    assert result["resumed"]["types"] == result["uncut"]["types"]
    assert text_parts(resumed) == text_parts(uncut)
    assert resumed["parts"] == uncut["parts"]


@pytest.mark.parametrize(("transport", "count"), [("sse", 1000), ("ws", 200)])
def test_many_random_drops_resumed_with_reconnect_to_stream(
    bases: tuple[str, str], transport: str, count: int
) -> None:
    """Each answer dropped after a random number of chunks on A and resumed with the
    SDK's reconnectToStream on B: every final message (parts, metadata, chunk
    types) equal to the uncut one."""
    result = run("manyDrops", transport, bases, count=count, body={"max_tokens": 8})
    assert result["count"] == count
    assert result["mismatchCount"] == 0, result["mismatches"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_from_the_other_process(bases: tuple[str, str], transport: str) -> None:
    result = run("stop", transport, bases, body={"max_tokens": 200})
    if transport == "sse":
        assert result["answer"]["stopped"] is True
    types = result["types"]
    # generation stopped: the answer ends with abort (the partial text closed first)
    assert types[-3:] == ["text-end", "finish-step", "abort"], types
    assert "finish" not in types
    assert 0 < types.count("text-delta") < 200
    assert result["text"]
    assert result["endedAfterMs"] < 1000
    assert result["resumeAfterStop"] is None  # 204 / no-active after a stop


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_abstract_chat_sends_and_resumes(bases: tuple[str, str], transport: str) -> None:
    result = run("abstractChat", transport, bases, graceMs=int(GRACE * 1000) + 300)
    sent = result["sent"]["messages"]
    assert result["sent"]["errors"] == []
    assert [m["role"] for m in sent] == ["user", "assistant"] * 2
    assert all(m["text"] for m in sent)
    assert sent[1]["metadata"]["model"] == "twinstream-synthetic"
    resumed = result["resumed"]
    assert resumed["status"] == "ready" and resumed["errors"] == []
    assert [m["role"] for m in resumed["messages"]] == ["user", "assistant"] * 3
    # the answer the new page resumed on the other process is the whole answer
    assert resumed["messages"][5]["text"] == result["uncut"]
    # after the end (and the grace): nothing to resume, nothing changes
    assert result["afterEnd"]["messages"] == resumed["messages"]
    assert result["afterEnd"]["status"] == "ready" and result["afterEnd"]["errors"] == []
    assert result["unknown"] == {"status": "ready", "errors": [], "messages": []}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_abstract_chat_stop_as_the_readme_shows(bases: tuple[str, str], transport: str) -> None:
    """stop() plus the stop endpoint on the other process (SSE), or stop() alone
    (WebSocket: its abort frame): generation ends with abort, seen by a reader
    on the other process; the partial message stays; a later resume finds nothing."""
    result = run("abstractStop", transport, bases, body={"max_tokens": 2000})
    stopped = result["stopped"]
    assert stopped["status"] == "ready" and stopped["errors"] == []
    (question, partial) = stopped["messages"]
    assert partial["role"] == "assistant" and partial["text"]
    assert result["witness"] == ["text-end", "finish-step", "abort"]
    assert result["endedAfterMs"] < 1000
    assert result["later"]["messages"] == stopped["messages"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tool_round_trip(bases: tuple[str, str], transport: str) -> None:
    result = run("toolRoundTrip", transport, bases, body={"max_tokens": 12, "tools": [WEATHER]})
    (call,) = result["calls"]
    assert call["toolName"] == "get_weather" and isinstance(call["input"]["city"], str)
    assert result["status"] == "ready" and result["errors"] == []
    user, assistant = result["rawParts"]
    # one assistant message: the tool call with its output, then the answer in words
    assert [part["type"] for part in assistant] == [
        "step-start",
        "tool-get_weather",
        "step-start",
        "text",
    ]
    assert assistant[1]["state"] == "output-available"
    assert assistant[1]["output"]["forecast"] == "sunny"
    assert assistant[3]["text"]
