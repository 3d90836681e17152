"""Ctrl-C in the CLI, against a server slow enough to interrupt mid-answer."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys

import pytest

from server.app import Settings
from server.backends.synthetic import synthetic_tokens

PROMPT = "resume me"  # 190 tokens: about 1 s at 200 tokens/s, never waited for in full


@pytest.fixture
def live_settings() -> Settings:
    return Settings(tokens_per_second=200, first_token_latency=0, ws_ping_interval=0)


def start_cli(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clients", *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def only_stream(live_server):
    [stream] = live_server.call(lambda: list(live_server.store._streams.values()))
    return stream


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_ctrl_c_stops_quietly_with_exit_130(live_server, transport):
    process = start_cli(PROMPT, "-t", transport, "--url", live_server.url)
    assert process.stdout is not None
    first = process.stdout.read(1)  # the answer has started
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.decode().splitlines() == ["interrupted"]
    text = (first + out).decode()
    assert text.endswith("\n") and "".join(synthetic_tokens(PROMPT)).startswith(text[:-1])
    stream = only_stream(live_server)
    live_server.call(stream.wait_ended)
    # the cancel reached the server (WebSocket: a message; SSE: POST /cancel)
    assert stream.events[-1]["finish_reason"] == "cancelled"
    assert stream.readers == 0


def test_interactive_terminal_ctrl_c_ends_only_the_turn(live_server):
    controller, terminal = pty.openpty()
    process = start_cli("-t", "ws", "--url", live_server.url, stdin=terminal)
    os.close(terminal)
    assert process.stdout is not None and process.stderr is not None
    try:
        banner = process.stderr.read1(4096).decode()
        assert "twinstream chat over ws" in banner
        os.write(controller, PROMPT.encode() + b"\n")
        assert process.stdout.read(1)  # the answer has started
        process.send_signal(signal.SIGINT)
        os.write(controller, b"next\n\x04")  # another turn, then Ctrl-D
        out, err = process.communicate(timeout=30)
    finally:
        os.close(controller)
    assert process.returncode == 0
    errors = err.decode()
    assert "(stopped)" in errors and "Traceback" not in errors
    assert out.decode().endswith("".join(synthetic_tokens("next")) + "\n")
