"""``GET /metrics`` and the per-stream log line, after a scripted run against
``python -m server``: the counters must equal what the clients saw."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from prometheus_client.parser import text_string_to_metric_families
from support.server_process import ServerProcess

KEY = "metrics-key-91b2"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROMPT = "zebra umbrella 4471"


def sse_events(body: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")
    ]


def ws_frame_bytes(text: str) -> int:
    """A server's (unmasked) text frame: the payload and its 2- or 4-byte header."""
    size = len(text.encode())
    return size + (2 if size < 126 else 4 if size < 65536 else 10)


def scrape(server: ServerProcess, headers: dict[str, str] | None = None) -> dict[tuple, float]:
    status, response_headers, body = server.request("GET", "/metrics", headers=headers or AUTH)
    assert status == 200
    assert response_headers["Content-Type"].startswith("text/plain")
    samples: dict[tuple, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    """N streams over three transports, K resumes; what the clients saw."""
    seen: dict[str, Any] = {"sse": [], "ws": [], "v1": 0, "sse_bytes": 0, "ws_bytes": 0}
    with ServerProcess(
        "--tokens-per-second", "0", "--log-level", "debug", env={"TWINSTREAM_API_KEY": KEY}
    ) as server:
        for max_tokens in (3, 4, 5):  # 3 SSE streams
            status, _, body = server.request(
                "GET", f"/sse?prompt=zebra+umbrella+4471&max_tokens={max_tokens}", headers=AUTH
            )
            assert status == 200
            seen["sse"].append(sse_events(body))
            seen["sse_bytes"] += len(body)
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/ws", header=[f"Authorization: Bearer {KEY}"]
        )
        try:
            for max_tokens in (2, 6):  # 2 WebSocket streams
                ws.send(json.dumps({"type": "start", "prompt": PROMPT, "max_tokens": max_tokens}))
                events = []
                while not events or events[-1]["type"] not in ("done", "error"):
                    text = ws.recv()
                    seen["ws_bytes"] += ws_frame_bytes(text)
                    events.append(json.loads(text))
                seen["ws"].append(events)
            # Resumes: WebSocket after seq 3 of the second stream (3 events again)...
            second = seen["ws"][1][0]["stream"]
            ws.send(json.dumps({"type": "resume", "stream": second, "after": 3}))
            for _ in range(4):
                text = ws.recv()
                seen["ws_bytes"] += ws_frame_bytes(text)
            # ...and one for a stream that does not exist.
            ws.send(json.dumps({"type": "resume", "stream": "A" * 22, "after": 0}))
            assert json.loads(ws.recv())["code"] == "stream_not_found"
        finally:
            ws.close()
        first = seen["sse"][0][0]["stream"]
        status, _, body = server.request(  # SSE resume after seq 1: 3 events again
            "GET", "/sse", headers={**AUTH, "Last-Event-ID": f"{first}:1"}
        )
        assert status == 200 and len(sse_events(body)) == 3
        seen["sse_bytes"] += len(body)
        status, _, _ = server.request(  # everything was delivered: 204
            "GET", "/sse", headers={**AUTH, "Last-Event-ID": f"{first}:4"}
        )
        assert status == 204
        chat = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4}
        status, _, body = server.request(  # one /v1 stream
            "POST", "/v1/chat/completions", json.dumps({**chat, "stream": True}), AUTH
        )
        assert status == 200
        seen["v1"] = 1
        # Requests Tornado itself logs with their URI (warnings for 4xx):
        status, _, _ = server.request(
            "GET", "/sse?prompt=zebra+umbrella+4471&max_tokens=-1", headers=AUTH
        )
        assert status == 400
        assert server.request("POST", f"/cancel?stream={first}", "", AUTH)[0] == 200
        status, _, _ = server.request("POST", f"/cancel?stream={'B' * 22}", "", AUTH)
        assert status == 404
        status, _, _ = server.request("GET", "/sse", headers={**AUTH, "Last-Event-ID": "zebra:1"})
        assert status == 400
        # A token in URLs (as the demo sends it) is redacted from the logs too.
        status, _, body = server.request("POST", "/auth/token", "", AUTH)
        token = json.loads(body)["token"]
        status, _, _ = server.request("GET", f"/sse?last_event_id={first}:4&access_token={token}")
        assert status == 204
        seen["token"] = token
        samples = scrape(server)
        server.stop()
        seen["logs"] = server.logs()
        yield server, {**seen, "samples": samples}


def test_metrics_parse_and_match_the_run(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    _, seen = run
    samples = seen["samples"]
    assert value(samples, "twinstream_streams_started_total", transport="sse") == 3
    assert value(samples, "twinstream_streams_started_total", transport="ws") == 2
    assert value(samples, "twinstream_streams_started_total", transport="v1") == 1
    assert value(samples, "twinstream_streams_ended_total", transport="sse", outcome="length") == 3
    assert value(samples, "twinstream_streams_ended_total", transport="ws", outcome="length") == 2
    sse_events_seen = sum(len(events) for events in seen["sse"]) + 3
    ws_events_seen = sum(len(events) for events in seen["ws"]) + 4
    assert value(samples, "twinstream_events_sent_total", transport="sse") == sse_events_seen
    assert value(samples, "twinstream_events_sent_total", transport="ws") == ws_events_seen
    assert value(samples, "twinstream_events_sent_total", transport="v1") == 6
    assert value(samples, "twinstream_bytes_sent_total", transport="sse") == seen["sse_bytes"]
    assert value(samples, "twinstream_bytes_sent_total", transport="ws") == seen["ws_bytes"]
    assert value(samples, "twinstream_resumes_total", transport="sse", answer="resumed") == 1
    assert value(samples, "twinstream_resumes_total", transport="sse", answer="stream_ended") == 2
    assert value(samples, "twinstream_resumes_total", transport="ws", answer="resumed") == 1
    assert (
        value(samples, "twinstream_resumes_total", transport="ws", answer="stream_not_found") == 1
    )
    assert value(samples, "twinstream_errors_total", code="stream_not_found") == 2  # ws + cancel
    assert value(samples, "twinstream_first_token_seconds_count", transport="sse") == 3
    assert value(samples, "twinstream_first_token_seconds_count", transport="ws") == 2
    assert value(samples, "twinstream_event_delivery_seconds_count", transport="sse") >= 1
    assert ("twinstream_slow_consumer_disconnects_total", ()) in samples  # none here
    assert value(samples, "twinstream_slow_consumer_disconnects_total") == 0
    for transport in ("sse", "ws", "v1"):
        assert value(samples, "twinstream_live_streams", transport=transport) == 0
        assert value(samples, "twinstream_open_connections", transport=transport) == 0


def test_metrics_need_the_key_unless_public() -> None:
    with ServerProcess(env={"TWINSTREAM_API_KEY": KEY}) as server:
        assert server.request("GET", "/metrics")[0] == 401
    with ServerProcess("--public-metrics", env={"TWINSTREAM_API_KEY": KEY}) as server:
        assert server.request("GET", "/metrics")[0] == 200
        assert server.request("GET", "/sse?prompt=hi")[0] == 401


def test_one_json_line_per_stream_without_the_prompt(
    run: tuple[ServerProcess, dict[str, Any]],
) -> None:
    _, seen = run
    lines = [
        json.loads(line.split("twinstream.stream: ", 1)[1])
        for line in seen["logs"].splitlines()
        if "twinstream.stream: " in line
    ]
    assert len(lines) == 6
    assert sorted(line["transport"] for line in lines) == ["sse"] * 3 + ["v1"] + ["ws"] * 2
    for line in lines:
        assert set(line) == {
            "event",
            "transport",
            "duration_s",
            "events",
            "bytes",
            "reconnects",
            "outcome",
        }
        assert line["outcome"] == "length"
    sse_lines = [line for line in lines if line["transport"] == "sse"]
    assert sorted(line["events"] for line in sse_lines) == [5, 6, 7]


def test_logs_never_hold_the_key_the_prompt_or_stream_ids(
    run: tuple[ServerProcess, dict[str, Any]],
) -> None:
    _, seen = run
    logs = seen["logs"]
    assert "tornado.access" in logs  # the access log is there (DEBUG level), redacted
    assert KEY not in logs
    assert seen["token"] not in logs and seen["token"].split(".")[1] not in logs
    for word in ("zebra", "umbrella", "4471"):
        assert word not in logs
    stream_ids = {events[0]["stream"] for events in seen["sse"] + seen["ws"]} | {"B" * 22}
    for stream_id in stream_ids:
        assert stream_id not in logs


def test_a_stream_is_counted_and_logged_once_however_many_relays_write_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two relays of one stream (the first reader and a resume) each count their
    writes; the stream ends once: one counter step, one log line, and nothing
    is added to its record after that line."""
    from server.core.log import StreamLog
    from server.metrics import Metrics
    from server.wire import events

    metrics = Metrics()
    log = StreamLog("CountedOnceTest_012345", "m")
    metrics.stream_started(log, "sse")

    def frame(first_seq: int, texts: list[bytes]) -> bytes:
        return b"".join(texts)

    first = metrics.counting(frame, log, "sse")
    second = metrics.counting(frame, log, "sse")
    log.append(events.start_event(log.id, "m", created=0))
    log.append_text(events.delta_record("hi", 1.5), False)
    log.append(events.done_event(log.id, 2, "stop"))
    texts = log.read(-1)
    caplog.set_level("INFO", logger="twinstream.stream")
    first(0, texts)  # all three events: the stream's end is counted
    second(0, texts[:1])  # a slower relay of the same stream, still writing
    second(1, texts[1:])
    registry = metrics.registry
    assert (
        registry.get_sample_value(
            "twinstream_streams_ended_total", {"transport": "sse", "outcome": "stop"}
        )
        == 1
    )
    assert (
        registry.get_sample_value("twinstream_first_token_seconds_count", {"transport": "sse"}) == 1
    )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "twinstream.stream"]
    assert len(lines) == 1 and lines[0]["events"] == 3
    # the transport's totals count every write, both relays'
    assert metrics.delivery["sse"].events == 6


async def test_a_stream_end_is_counted_after_its_terminal_event_is_framed() -> None:
    """The end's bookkeeping (counter, log line) runs on the next loop turn, so
    it does not stand between the terminal event and its write."""
    from server.core.log import StreamLog
    from server.metrics import Metrics
    from server.wire import events

    metrics = Metrics()
    log = StreamLog("EndAfterWriteTest_01234", "m")
    metrics.stream_started(log, "ws")
    counted = metrics.counting(lambda first_seq, texts: b"".join(texts), log, "ws")
    log.append(events.start_event(log.id, "m", created=0))
    log.append(events.done_event(log.id, 1, "stop"))
    ended = {"transport": "ws", "outcome": "stop"}
    live = {"transport": "ws"}
    assert counted(0, log.read(-1)) == b"".join(log.read(-1))
    assert metrics.registry.get_sample_value("twinstream_streams_ended_total", ended) is None
    assert metrics.registry.get_sample_value("twinstream_live_streams", live) == 1
    await asyncio.sleep(0)
    assert metrics.registry.get_sample_value("twinstream_streams_ended_total", ended) == 1
    assert metrics.registry.get_sample_value("twinstream_live_streams", live) == 0
    assert counted(1, log.read(0)) == b"".join(log.read(0))  # a late write counts nothing
    await asyncio.sleep(0)
    assert metrics.registry.get_sample_value("twinstream_streams_ended_total", ended) == 1
