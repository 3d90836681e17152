"""``python -m clients`` as a user runs it: a subprocess against the live server."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from server.app import Settings
from server.backends.base import ChatRequest
from server.backends.synthetic import synthetic_tokens
from server.backends.synthetic_text import synthetic_reply

TRANSPORTS = ["sse", "ws"]
PROMPT = "What is a socket?"


@pytest.fixture
def live_settings() -> Settings:
    return Settings(tokens_per_second=0, ws_ping_interval=0)


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def text_of(prompt: str, max_tokens: int | None = None) -> str:
    return "".join(synthetic_tokens(prompt)[:max_tokens])


def chat_replies(prompts: list[str], max_tokens: int = 256, **params: object) -> list[str]:
    """What the synthetic model answers to each prompt of a conversation that
    keeps every earlier question and answer."""
    history: list[dict[str, object]] = []
    replies = []
    for prompt in prompts:
        history.append({"role": "user", "content": prompt})
        request = ChatRequest(messages=tuple(history), max_tokens=max_tokens, params=params)
        reply = "".join(str(piece) for piece in synthetic_reply(request).pieces)
        history.append({"role": "assistant", "content": reply})
        replies.append(reply)
    return replies


def test_both_transports_print_the_same_text(live_server):
    outputs = [run_cli(PROMPT, "--transport", t, "--url", live_server.url) for t in TRANSPORTS]
    for result in outputs:
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    assert outputs[0].stdout == outputs[1].stdout == text_of(PROMPT) + "\n"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_max_tokens(live_server, transport):
    result = run_cli("hi", "-t", transport, "--url", live_server.url, "--max-tokens", "4")
    assert result.returncode == 0
    assert result.stdout == text_of("hi", 4) + "\n"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_json_prints_one_event_per_line(live_server, transport):
    result = run_cli("hi", "-t", transport, "--url", live_server.url, "--max-tokens", "3", "--json")
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"] for e in events] == ["start", "delta", "delta", "delta", "done"]
    assert [e["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert "".join(e.get("content", "") for e in events) == text_of("hi", 3)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stats_go_to_stderr(live_server, transport):
    result = run_cli(
        "hi", "-t", transport, "--url", live_server.url, "--max-tokens", "5", "--stats"
    )
    assert result.returncode == 0
    assert result.stdout == text_of("hi", 5) + "\n"
    [line] = result.stderr.splitlines()
    for part in ("time to first token", "tokens/s", "5 tokens", "7 events", "bytes received"):
        assert part in line
    assert line.endswith("0 reconnects")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_interactive_reads_prompts_from_stdin(live_server, transport):
    result = run_cli(
        "-t", transport, "--url", live_server.url, "--max-tokens", "6",
        stdin="first question\n\n  second question  \n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = chat_replies(["first question", "  second question  "], max_tokens=6)
    assert first == text_of("first question", 6)
    assert second != text_of("  second question  ", 6)  # the history changes the answer
    assert result.stdout == first + "\n" + second + "\n"
    assert result.stderr == ""  # no prompts or banners when stdin is not a terminal


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chat_keeps_history_with_a_system_message_and_parameters(live_server, transport):
    result = run_cli(
        "-t", transport, "--url", live_server.url, "--seed", "5", "--temperature", "0.5",
        "--system", "Be brief.",
        stdin="one\ntwo\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    history: list[dict[str, object]] = [{"role": "system", "content": "Be brief."}]
    expected = []
    for prompt in ("one", "two"):
        history.append({"role": "user", "content": prompt})
        request = ChatRequest(
            messages=tuple(history), max_tokens=256, params={"seed": 5, "temperature": 0.5}
        )
        reply = "".join(str(p) for p in synthetic_reply(request).pieces)
        history.append({"role": "assistant", "content": reply})
        expected.append(reply + "\n")
    assert result.stdout == "".join(expected)


def test_chat_commands_show_and_reset_the_history(live_server):
    result = run_cli(
        "-t", "ws", "--url", live_server.url, "--max-tokens", "3",
        stdin="hello\n/history\n/new\nhello\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == (text_of("hello", 3) + "\n") * 2  # a new conversation: same answer
    assert result.stderr.splitlines() == [
        "[user] hello",
        f"[assistant] {text_of('hello', 3)}",
        "(new conversation)",
    ]


class CountingProxy:
    """Forwards TCP connections on 127.0.0.1 to the server, counting them."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@pytest.mark.parametrize("transport, connections", [("ws", 1), ("sse", 3)])
def test_interactive_conversation_connections(live_server, transport, connections):
    """WebSocket: every turn on one socket. SSE: a request per turn."""
    proxy = CountingProxy(live_server.port)
    try:
        result = run_cli("-t", transport, "--url", proxy.url, stdin="a\nb\nc\n/quit\nd\n")
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(r + "\n" for r in chat_replies(list("abc")))  # /quit ends it
    assert proxy.connections == connections


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unreachable_server_is_one_line_and_exit_1(transport):
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    result = run_cli("hi", "-t", transport, "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot connect to ") and "refused" in line
    assert line.endswith("Start one with: python3 -m server")


def test_server_error_is_one_line_and_exit_1(live_server):
    result = run_cli("hi", "--url", live_server.url, "--max-tokens", "99999")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: HTTP 400 invalid_max_tokens: 'max_tokens' is 99999; it must be from 1 to 4096"
    ]


def test_interactive_error_from_a_pipe_stops_with_exit_1(live_server):
    result = run_cli(
        "-t", "ws", "--url", live_server.url, stdin="ok\n" + "x" * 40_000 + "\nlater\n"
    )
    assert result.returncode == 1
    assert result.stdout == text_of("ok") + "\n"
    assert result.stderr.startswith("error: stream error prompt_too_long")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["hi", "--transport", "smoke"], "invalid choice: 'smoke'"),
        (["hi", "--max-tokens", "0"], "must be at least 1"),
        (["hi", "--read-timeout", "-1"], "must be greater than 0"),
        (["   "], "the prompt is empty"),
        (["hi", "--url", "ftp://x"], "not an http(s):// or ws(s):// server URL"),
        (["Hi", "there"], 'put it in quotes, e.g. python3 -m clients "Hi there"'),
        (["Hi", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["hi", "--temperature", "hot"], "not a number: 'hot'"),
        (["hi", "--temperature", "3"], "must be from 0 to 2"),
    ],
)
def test_usage_errors_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_explains():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ("--transport", "--url", "--max-tokens", "--json", "--stats", "--retries"):
        assert flag in result.stdout
    assert "interactive" in result.stdout or "stdin" in result.stdout


def test_empty_stdin_without_a_prompt_says_what_to_do():
    result = run_cli(stdin="")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no prompt: standard input was empty")


def test_closed_stdin_without_a_prompt_says_what_to_do():
    result = subprocess.run(
        [sys.executable, "-m", "clients"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        # fd 0 closed, as `python3 -m clients <&-` does: Python sets sys.stdin to None
        preexec_fn=lambda: os.close(0),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: no PROMPT and no standard input")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_prompt_is_sent_exactly_as_typed(live_server, transport):
    result = run_cli("  Hi  ", "-t", transport, "--url", live_server.url, "--max-tokens", "5")
    assert result.stdout == text_of("  Hi  ", 5) + "\n"
