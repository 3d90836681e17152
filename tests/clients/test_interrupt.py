"""Interrupted iteration (Ctrl-C): :meth:`Stream.drain` hands over every
event already received, without reading more."""

from __future__ import annotations

import pytest
from support.stalling import StallingSSEServer

import clients
from server.app import Settings
from server.backends.synthetic import synthetic_tokens


@pytest.fixture
def live_settings() -> Settings:
    return Settings(tokens_per_second=0, ws_ping_interval=0, heartbeat=15.0)


def test_sse_drain_gives_the_rest_of_a_batch_without_reading():
    deltas = [f"part {n}. " for n in range(8)]
    server = StallingSSEServer(deltas)
    try:
        with clients.SSEClient(server.url, read_timeout=5) as client:
            stream = client.stream("hello")
            events = iter(stream)
            assert next(events)["type"] == "start"
            assert next(events)["content"] == deltas[0]
            # Ctrl-C here: the other seven arrived in the same read; the server now stalls,
            # so a read would block (and time out). The event the loop was handed comes first.
            drained = list(stream.drain())
            assert [e["seq"] for e in drained] == list(range(1, 9))
            assert [e["content"] for e in drained] == deltas
            assert stream.text == "".join(deltas) and stream.stats.tokens == 8
            assert not stream.queue and list(stream.drain()) == []
            stream.cancel()
            stream.close()
    finally:
        server.close()
    assert server.cancels == ["POST /cancel?stream=s1 HTTP/1.1"]


def test_sse_malformed_event_comes_after_the_good_ones_of_its_read():
    server = StallingSSEServer(["one", "two"])
    server.batch += b"data: {not json\n\n"
    try:
        with clients.SSEClient(server.url, read_timeout=5) as client:
            stream = client.stream("hello")
            with pytest.raises(clients.MalformedData, match="not JSON"):
                for _ in stream:
                    pass
            assert stream.text == "onetwo"
    finally:
        server.close()


def test_websocket_drain_gives_what_was_queued_then_iteration_goes_on(live_server):
    with clients.connect("ws", live_server.url) as client:
        other, stream = client.stream("left", 20), client.stream("right", 20)
        events = iter(stream)
        assert next(events)["type"] == "start"
        other.collect()  # meanwhile the socket brings the events of `stream` into its queue
        assert stream.queue
        # Ctrl-C here: the start the loop was handed, then everything queued
        drained = list(stream.drain())
        assert drained[0]["type"] == "start" and len(drained) > 1
        assert [e["seq"] for e in drained] == list(range(len(drained)))
        rest = list(events)  # iteration still works after a drain: no repeat, no gap
        seqs = [e["seq"] for e in drained + rest]
        assert seqs == list(range(len(seqs)))
        assert stream.ended and stream.text == "".join(synthetic_tokens("right")[:20])
