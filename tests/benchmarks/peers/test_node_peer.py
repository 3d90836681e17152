"""The Node.js peer (benchmarks/peers/node): the same tokens as the Python model, the
same pace, the same wire contract, against the real ``node`` process."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
from typing import Any

from benchmarks.clients import Endpoint, open_websocket, sse_completion, ws_completion
from benchmarks.config import TINY
from benchmarks.servers import NODE, NODE_PEER_DIR, ServerProcess, node_peer_ready
from benchmarks.throughput import model_lag
from server.backends.synthetic import synthetic_tokens

PROMPTS = [f"prompt {i}" for i in range(150)] + ["", "héllo wörld", "x" * 5000, "日本語 ✓"]


def test_the_node_peer_can_start_here() -> None:
    # scripts/test.sh installs node and runs npm ci in its folder
    assert node_peer_ready() is None


def test_node_model_says_exactly_the_python_models_tokens() -> None:
    script = (
        'import("./synthetic.mjs").then((m) => { let text = "";'
        " process.stdin.on('data', (d) => (text += d));"
        " process.stdin.on('end', () => console.log(JSON.stringify("
        "JSON.parse(text).map((p) => m.syntheticTokens(p))))); });"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=json.dumps(PROMPTS),
        capture_output=True,
        text=True,
        cwd=NODE_PEER_DIR,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == [synthetic_tokens(p) for p in PROMPTS]


def test_node_peer_paces_like_the_python_model() -> None:
    """First token first_token_latency after start, then one every 1/rate on an absolute
    schedule, each delta stamped at release: both transports, from the t stamps alone."""
    config = TINY.replace(tokens_per_second=50.0, first_token_latency=0.1)
    with ServerProcess(NODE.command(50.0, 0.1)) as server:
        endpoint = Endpoint(server.url)

        async def both() -> list[Any]:
            sse, connection = await sse_completion(endpoint, "pace me", 15)
            await connection.close()
            ws, websocket = await ws_completion(endpoint, "pace me", 15)
            assert websocket is not None
            await websocket.close()
            return [sse, ws]

        records = asyncio.run(both())
    for record in records:
        assert record.delta_count == 15 and record.finish_reason == "length"
        lags = model_lag([record], config)
        assert len(lags) == 15
        # never early by more than a timer's rounding; an absolute schedule catches up
        # after a stall of the (shared) machine, so most tokens are on time
        assert all(lag >= -0.002 for lag in lags), lags
        assert statistics.median(lags) <= 0.05, lags
        assert record.received[-1] - record.received[0] >= 0.1 + 14 / 50 - 0.01


def test_node_peer_websocket_refuses_cancels_and_keeps_no_streams() -> None:
    with ServerProcess(NODE.command(20.0, 0.0)) as server:

        async def talk() -> list[dict[str, Any]]:
            websocket = await open_websocket(Endpoint(server.url))
            got: list[dict[str, Any]] = []
            await websocket.send(json.dumps({"type": "start", "ref": 7}))
            got.append(json.loads(await websocket.recv()))
            await websocket.send("{not json")
            got.append(json.loads(await websocket.recv()))
            await websocket.send(json.dumps({"type": "start", "prompt": "p", "max_tokens": 99}))
            start = json.loads(await websocket.recv())
            got.append(start)
            await websocket.send(json.dumps({"type": "cancel", "stream": start["stream"]}))
            while got[-1]["type"] != "done":
                got.append(json.loads(await websocket.recv()))
            await websocket.send(json.dumps({"type": "resume", "stream": "x" * 22, "after": 0}))
            got.append(json.loads(await websocket.recv()))
            await websocket.close()
            return got

        got = asyncio.run(talk())
    assert got[0]["type"] == "error" and got[0]["code"] == "missing_prompt" and got[0]["ref"] == 7
    assert got[1]["code"] == "invalid_json"
    assert got[2]["type"] == "start"
    assert got[-2]["type"] == "done" and got[-2]["finish_reason"] == "cancelled"
    assert len(got) - 4 < 99  # stopped well before its 99 tokens
    assert got[-1]["code"] == "stream_not_found"


def test_node_peer_sse_refuses_bad_requests_with_json_errors() -> None:
    import urllib.error
    import urllib.request

    with ServerProcess(NODE.command(0, 0)) as server:
        for query, status, code in (
            ("max_tokens=3", 400, "missing_prompt"),
            ("prompt=p&max_tokens=0", 400, "invalid_max_tokens"),
            ("prompt=" + "x" * 40000, 413, "prompt_too_long"),
        ):
            try:
                urllib.request.urlopen(f"{server.url}sse?{query}", timeout=10)
                raise AssertionError("accepted " + query)
            except urllib.error.HTTPError as exc:
                assert exc.code == status
                assert json.loads(exc.read())["error"]["code"] == code
