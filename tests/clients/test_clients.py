"""The Python clients against the real server over real sockets (both transports)."""

from __future__ import annotations

import json

import pytest

import clients
from server.app import Settings
from server.backends.synthetic import synthetic_tokens

TRANSPORTS = ["sse", "ws"]
PROMPT = "Explain streaming to a curious child"


@pytest.fixture
def live_settings() -> Settings:
    return Settings(tokens_per_second=0, ws_ping_interval=0, heartbeat=15.0)


def expected_text(prompt: str, max_tokens: int | None = None) -> str:
    return "".join(synthetic_tokens(prompt)[:max_tokens])


def test_both_transports_give_the_same_text(live_server):
    sse = clients.stream(PROMPT, "sse", live_server.url)
    ws = clients.stream(PROMPT, "ws", live_server.url)
    assert sse.collect() == ws.collect() == expected_text(PROMPT)
    assert sse.finish_reason == ws.finish_reason == "stop"
    assert sse.stream_id and ws.stream_id and sse.stream_id != ws.stream_id


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_events_arrive_once_in_order(live_server, transport):
    with clients.stream(PROMPT, transport, live_server.url, max_tokens=12) as stream:
        events = list(stream)
    assert [e["seq"] for e in events] == list(range(14))
    assert [e["type"] for e in events] == ["start"] + ["delta"] * 12 + ["done"]
    assert {e["stream"] for e in events} == {stream.stream_id}
    assert events[0]["model"] == stream.model == "twinstream-synthetic"
    assert stream.finish_reason == "length"
    assert stream.usage is not None and stream.usage["completion_tokens"] == 12
    assert stream.text == expected_text(PROMPT, 12)
    stats = stream.stats
    assert (stats.events, stats.tokens, stats.reconnects) == (14, 12, 0)
    assert stats.bytes_received > sum(len(json.dumps(e)) for e in events) // 2
    assert stats.time_to_first_token is not None and stats.time_to_first_token >= 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_deltas_and_complete(live_server, transport):
    pieces = list(clients.stream("hi", transport, live_server.url, max_tokens=5).deltas())
    assert pieces == synthetic_tokens("hi")[:5]
    assert clients.complete("hi", transport, live_server.url, max_tokens=5) == "".join(pieces)


def test_websocket_client_keeps_one_socket_for_a_conversation(live_server):
    with clients.connect("ws", live_server.url) as client:
        texts = [client.stream(p, 8).collect() for p in ("one", "two", "three")]
        assert client.connections == 1
    assert texts == [expected_text(p, 8) for p in ("one", "two", "three")]


def test_websocket_streams_interleave_on_one_socket(live_server):
    with clients.connect("ws", live_server.url) as client:
        first, second = client.stream("left", 30), client.stream("right", 30)
        left, right = iter(first), iter(second)
        next(left), next(right)  # both started: two streams live on one socket
        while not (first.ended and second.ended):
            for iterator in (left, right):
                next(iterator, None)
        assert client.connections == 1
    assert first.text == expected_text("left", 30)
    assert second.text == expected_text("right", 30)


def test_sse_client_makes_a_request_per_stream(live_server):
    client = clients.connect("sse", live_server.url)
    assert [client.stream(p, 3).collect() for p in ("a", "b")] == [
        expected_text("a", 3),
        expected_text("b", 3),
    ]


@pytest.mark.parametrize(
    "suffix", ["", "/", "/sse", "/ws"], ids=["bare", "slash", "sse-url", "ws-url"]
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_url_may_name_either_endpoint(live_server, transport, suffix):
    url = live_server.url + suffix
    if suffix == "/ws":
        url = url.replace("http://", "ws://")
    assert clients.complete("x", transport, url, max_tokens=2) == expected_text("x", 2)


def test_unknown_transport_is_a_value_error():
    with pytest.raises(ValueError, match="transport"):
        clients.connect("carrier-pigeon", "http://127.0.0.1:1")
    with pytest.raises(ValueError, match="URL"):
        clients.connect("sse", "ftp://example.com")


def test_reconnect_delay_doubles_is_capped_and_jittered():
    policy = clients.ReconnectPolicy(initial_delay=0.1, max_delay=1.0, jitter=0.5)
    for attempt, full in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(full * 0.5 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jitter: not all clients come back at once
    assert 1.0 <= clients.ReconnectPolicy(jitter=0).delay(1, server_retry=1.0) == 1.0
    assert clients.ReconnectPolicy(jitter=0, max_delay=30).delay(3, server_retry=2.0) == 8.0


# --- conversations and parameters -------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_conversation_with_parameters_is_the_same_on_both_transports(live_server, transport):
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    first = clients.stream(messages=history, transport=transport, url=live_server.url, seed=4)
    first_text = first.collect()
    history += [first.message(), {"role": "user", "content": "What did I say?"}]
    second = clients.complete(
        messages=history, transport=transport, url=live_server.url, seed=4, max_tokens=9
    )
    other = "sse" if transport == "ws" else "ws"
    assert second == clients.complete(
        messages=history, transport=other, url=live_server.url, seed=4, max_tokens=9
    )
    assert first_text and second and second != expected_text("What did I say?", 9)
    stop = first_text[10:14]
    stopped = clients.stream(
        messages=history[:2], transport=transport, url=live_server.url, seed=4, stop=[stop]
    )
    assert stopped.collect() == first_text[: first_text.index(stop)]
    assert stopped.finish_reason == "stop"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tool_calls_are_collected(live_server, transport):
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    stream = clients.stream(
        "please lookup", transport, live_server.url, tools=[tool], tool_choice="required"
    )
    stream.collect()
    assert stream.finish_reason == "tool_calls" and stream.text == ""
    (call,) = stream.tool_calls
    assert call["function"] == {"name": "lookup", "arguments": "{}"}
    assert stream.message() == {"role": "assistant", "content": None, "tool_calls": [call]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_parameter_names_the_field(live_server, transport):
    with pytest.raises(clients.ClientError, match="'logprobs'"):
        clients.complete("hi", transport, live_server.url, logprobs=True)


def test_a_long_prompt_goes_by_post_on_sse(live_server):
    prompt = "é" * 5000  # 10,000 bytes, ~30,000 characters once percent-encoded
    assert clients.complete(prompt, "sse", live_server.url, max_tokens=4) == expected_text(
        prompt, 4
    )


def test_prompt_or_messages_not_both():
    with pytest.raises(ValueError, match="not both"):
        clients.stream("hi", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="not both and not neither"):
        clients.stream()


def test_import_clients_is_enough_for_aio():
    import importlib
    import subprocess
    import sys

    code = "import clients; print(clients.aio.astream.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "astream", result.stderr
    assert importlib.import_module("clients").aio is clients.aio
