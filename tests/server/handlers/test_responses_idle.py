"""A non-streaming ``POST /v1/responses`` whose client leaves: the response is
no longer read, so the idle timeout cancels it (review item 5). A real server
process on a real redis-server (where the record names the response the client
never got), a raw socket that closes mid-request. Nothing is mocked."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from support.redisutil import RedisServer
from support.server_process import ServerProcess

from server.store.redis.keys import Keys


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[ServerProcess]:
    args = ("--store", redis_server.url, "--idle-timeout", "1", "--tokens-per-second", "1")
    with ServerProcess(*args, "--first-token-latency", "0", "--log-level", "warning") as running:
        yield running


def test_a_client_that_leaves_a_whole_response_stops_reading_it(
    server: ServerProcess, redis_server: RedisServer
) -> None:
    body = json.dumps({"input": "tell me a long story", "max_output_tokens": 2000}).encode()
    client = socket.create_connection(("127.0.0.1", server.port))
    client.sendall(
        b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    keys = redis.Redis.from_url(redis_server.url, decode_responses=True)
    deadline = time.monotonic() + 10
    found: list[str] = []
    while not found and time.monotonic() < deadline:
        found = list(keys.scan_iter("twinstream:d:response:*"))
        time.sleep(0.05)
    assert len(found) == 1, found
    stream_id = Keys("twinstream:").of_record("response", found[0])
    client.close()  # the client gives up waiting for the whole response
    # Tens of tokens at 1 a second take longer than this: only the idle timeout (1 s,
    # the reaper's period 1 s) ends it this soon. Not polled: a retrieve counts as a read.
    time.sleep(4)
    response = httpx.get(f"{server.url}/v1/responses/resp_{stream_id}").json()
    assert response["status"] == "cancelled"
    assert "Traceback" not in server.logs()
