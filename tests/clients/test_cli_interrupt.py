"""Ctrl-C in the CLI, against a server slow enough to interrupt mid-answer."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from support.stalling import StallingSSEServer

from server.app import Settings
from server.backends.synthetic import synthetic_tokens

PROMPT = "resume me"  # 190 tokens: about 1 s at 200 tokens/s, never waited for in full


@pytest.fixture
def live_settings() -> Settings:
    return Settings(tokens_per_second=200, first_token_latency=0, ws_ping_interval=0)


def as_from_a_terminal() -> None:
    """Run in the CLI's process before it starts: Ctrl-C at its default action.
    A shell without job control starts background commands with SIGINT
    ignored (POSIX), an ignored signal stays ignored across exec, and Python
    then installs no KeyboardInterrupt handler; a test run started that way
    would otherwise send SIGINT to a CLI that cannot hear it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clients", *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=as_from_a_terminal,
    )


def only_stream(live_server):
    [stream] = live_server.call(lambda: list(live_server.store._streams.values()))
    return stream


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_ctrl_c_stops_quietly_with_exit_130(live_server, transport):
    process = start_cli(PROMPT, "-t", transport, "--url", live_server.url)
    assert process.stdout is not None
    # the answer has started; os.read takes just this byte (a buffered read(1)
    # would take more, which communicate() below would then not see)
    first = os.read(process.stdout.fileno(), 1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.decode().splitlines() == ["interrupted"]
    text = (first + out).decode()
    assert len(text) > 2 and text.endswith("\n")
    assert "".join(synthetic_tokens(PROMPT)).startswith(text[:-1])
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
        assert os.read(process.stdout.fileno(), 1)  # the answer has started
        process.send_signal(signal.SIGINT)
        os.write(controller, b"next\n\x04")  # another turn, then Ctrl-D
        out, err = process.communicate(timeout=30)
    finally:
        os.close(controller)
    assert process.returncode == 0
    errors = err.decode()
    assert "(stopped)" in errors and "Traceback" not in errors
    assert out.decode().endswith("".join(synthetic_tokens("next")) + "\n")


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="needs Linux pipe sizes")
def test_ctrl_c_prints_every_event_already_received():
    """Ctrl-C while a batch of received events is being printed: all of them
    are printed (none is dropped with the interrupted read), then the stream
    is cancelled and the CLI exits 130 quietly.

    Deterministic: stdout is a one-page pipe nobody reads, so the CLI blocks
    writing the batch part way through; the signal lands there, with events
    of the same read still waiting to be printed."""
    deltas = [f"<{n}>" + chr(ord("a") + n) * 600 for n in range(8)]  # ~4.9 KB of text
    server = StallingSSEServer(deltas)
    assert len(server.batch) < 8000  # one read of the client's buffered socket
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "clients", "hello", "--url", server.url],
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            preexec_fn=as_from_a_terminal,
        )
        os.close(write_end)
        # wait until the CLI has printed part of the batch and blocks on the full pipe
        deadline = time.monotonic() + 20
        previous, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            waiting = struct.unpack("i", fcntl.ioctl(read_end, termios.FIONREAD, b"\0" * 4))[0]
            if waiting != previous:
                previous, stable_since = waiting, time.monotonic()
            elif waiting > 0 and time.monotonic() - stable_since > 0.5:
                break
            time.sleep(0.02)
        assert 0 < previous < len("".join(deltas))  # blocked part way through the batch
        process.send_signal(signal.SIGINT)
        with os.fdopen(read_end, "rb") as out_pipe:
            read_end = -1
            out = out_pipe.read()
        err = process.communicate(timeout=30)[1]
    finally:
        if read_end >= 0:
            os.close(read_end)
        server.close()
    assert process.returncode == 130
    assert err.decode().splitlines() == ["interrupted"]
    assert out.decode() == "".join(deltas) + "\n"
    assert len(server.cancels) == 1 and "stream=s1" in server.cancels[0]
