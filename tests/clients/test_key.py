"""The Python clients against a server that needs an API key: ``api_key=``
(and the CLI's ``$TWINSTREAM_API_KEY``) opens SSE and WebSocket streams and
cancels them; without it the server's 401 surfaces as ``HTTPStatusError``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.server_process import ServerProcess

import clients

KEY = "client-key-3d9f"


@pytest.fixture(scope="module")
def keyed() -> Iterator[ServerProcess]:
    with ServerProcess("--tokens-per-second", "0", env={"TWINSTREAM_API_KEY": KEY}) as server:
        yield server


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_api_key_opens_streams(keyed: ServerProcess, transport: str) -> None:
    text = clients.complete("hello", transport, keyed.url, max_tokens=4, api_key=KEY)
    assert text.strip()


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_without_the_key_the_401_is_an_http_status_error(
    keyed: ServerProcess, transport: str
) -> None:
    for key in (None, "wrong"):
        with pytest.raises(clients.HTTPStatusError) as refused:
            clients.complete("hello", transport, keyed.url, max_tokens=4, api_key=key)
        assert (refused.value.status, refused.value.code) == (401, "invalid_api_key")


def test_cancel_carries_the_key() -> None:
    with ServerProcess(
        "--tokens-per-second",
        "20",
        "--first-token-latency",
        "0",
        env={"TWINSTREAM_API_KEY": KEY},
    ) as server:
        with clients.stream("a long story", "sse", server.url, api_key=KEY) as stream:
            for event in stream:
                if event["type"] == "delta":
                    stream.cancel()
                if event["type"] == "done":
                    break
        assert stream.finish_reason == "cancelled"


def test_cli_reads_the_key_from_the_environment(keyed: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clients", "hi", "--max-tokens", "3", "--url", keyed.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TWINSTREAM_API_KEY": KEY},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    shown = subprocess.run(
        [sys.executable, "-m", "clients", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TWINSTREAM_API_KEY": KEY},
    )
    assert KEY not in shown.stdout
