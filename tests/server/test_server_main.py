"""``python -m server`` as a user runs it: a real process on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("twinstream serving on http://127.0.0.1:"), line
    return process, line.split()[-1].rstrip("/")


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_serves_then_stops_cleanly_on_sigterm(running: list[subprocess.Popen[str]]) -> None:
    process, url = start("--tokens-per-second", "0")
    running.append(process)
    with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"
    with urllib.request.urlopen(url + "/sse?prompt=hi&max_tokens=3", timeout=5) as response:
        body = response.read().decode()
    assert body.count("data: ") == 5
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_environment_variables_configure_it(running: list[subprocess.Popen[str]]) -> None:
    process, url = start(env={"TWINSTREAM_MODEL": "env-model", "TWINSTREAM_TOKENS_PER_SECOND": "0"})
    running.append(process)
    with urllib.request.urlopen(url + "/v1/models", timeout=5) as response:
        assert json.loads(response.read())["data"][0]["id"] == "env-model"


def test_help_explains_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--backend",
        "--model",
        "--tokens-per-second",
        "--store",
        "--idle-timeout",
        "--retention",
        "TWINSTREAM_PORT",
    ):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--backend", "nope"], {}, "invalid choice"),
        (["--tokens-per-second", "-1"], {}, "must be >= 0"),
        (["--backend", "openai"], {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}, "OPENAI_API_KEY"),
        ([], {"TWINSTREAM_PORT": "eighty"}, "TWINSTREAM_PORT"),
        (["--port", "abc"], {}, "argument --port: a TCP port is a number 0..65535, got 'abc'"),
    ],
)
def test_bad_configuration_is_one_clear_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(running: list[subprocess.Popen[str]]) -> None:
    process, url = start()
    running.append(process)
    port = url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", port],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_ends_open_sse_streams_with_server_shutdown(
    running: list[subprocess.Popen[str]],
) -> None:
    """Past the drain deadline a live stream ends with an error, never a ``done``
    that looks finished (the whole battery is in test_shutdown.py)."""
    process, url = start(
        "--tokens-per-second", "5", "--first-token-latency", "0", "--drain-timeout", "0.2"
    )
    running.append(process)
    with urllib.request.urlopen(url + "/sse?prompt=long&max_tokens=100", timeout=10) as response:
        assert response.readline().startswith(b"id: ")  # streaming has begun
        process.send_signal(signal.SIGTERM)
        rest = response.read().decode()  # until the server closes the response
    events = [json.loads(line[6:]) for line in rest.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "error"
    assert events[-1]["code"] == "server_shutdown"
    assert process.wait(timeout=10) == 0


def _maps(process: subprocess.Popen[str]) -> str:
    with open(f"/proc/{process.pid}/maps", encoding="utf-8") as maps:
        return maps.read()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_loop_option_runs_the_server_on_that_event_loop(
    running: list[subprocess.Popen[str]], loop: str
) -> None:
    """--loop uvloop serves on libuv's loop (its extension module is mapped into the
    process); the default, asyncio's own, never loads it."""
    process, url = start("--loop", loop, "--tokens-per-second", "0", "--log-level", "warning")
    running.append(process)
    with urllib.request.urlopen(f"{url}/sse?prompt=loop&max_tokens=3", timeout=10) as response:
        body = response.read().decode()
    assert body.count('"type":"delta"') == 3 and '"type":"done"' in body
    assert ("uvloop/loop." in _maps(process)) == (loop == "uvloop")
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
