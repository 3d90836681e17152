"""The churn part, tiny: clients cut by the server at random; nothing lost, nothing
repeated, every text exact -- on one server, then with two workers restarted in turn
sharing one real redis-server, then a real six-node Redis Cluster. And the
replay-delay bookkeeping on its own."""

from __future__ import annotations

from benchmarks.churn import ChurnStream, run_churn
from benchmarks.config import TINY
from benchmarks.report.sections import churn_details

CONFIG = TINY.replace(workers=1, tokens_per_second=100.0, churn_seconds=3.0)


def test_replay_delay_is_resume_to_the_last_event_produced_while_away() -> None:
    stream = ChurnStream("p", 5)
    stream.receive({"type": "start", "seq": 0, "stream": "S", "t": 1.0}, at=1.01)
    stream.receive({"type": "delta", "seq": 1, "content": "a", "t": 1.1}, at=1.11)
    stream.resuming(at=2.0)  # cut at about 1.2, back at 2.0
    # seq 2 and 3 were produced while away, 4 after the resume
    stream.receive({"type": "delta", "seq": 2, "content": "b", "t": 1.5}, at=2.2)
    stream.receive({"type": "delta", "seq": 3, "content": "b", "t": 1.9}, at=2.25)
    stream.receive({"type": "delta", "seq": 4, "content": "c", "t": 2.1}, at=2.3)
    assert stream.replay_delays == [0.25]
    stream.receive({"type": "done", "seq": 5, "t": 2.2}, at=2.4)
    summary = stream.summary()
    assert summary["expected"] == summary["distinct"] == 6
    assert summary["duplicated"] == 0 and summary["finished"]


def test_churn_part_delivers_everything_exactly_once() -> None:
    results = run_churn(CONFIG, progress=False)
    for transport in ("sse", "ws"):
        data = results["transports"][transport]
        assert data["errors"] == 0, data["error_examples"]
        assert data["cuts"] > 0 and data["connections"] > data["streams"]
        assert data["delivery_percent"] == 100
        assert data["duplicated"] == 0
        assert data["exact_text"] == data["finished"] == data["streams"]
    for key, store in (("rolling_restart", "redis"), ("rolling_restart_cluster", "redis-cluster")):
        restart = results[key]
        assert restart["run"] is True, restart.get("reason")
        assert (restart["store"], restart["processes"]) == (store, 2)
        # both workers of the server were restarted while clients churned, and every
        # stream still arrived whole, exactly once
        assert [r["pid"] for r in restart["restarts"]] and len(restart["restarts"]) == 2, key
        for transport in ("sse", "ws"):
            data = restart["transports"][transport]
            assert data["errors"] == 0, (key, data["error_examples"])
            assert data["delivery_percent"] == 100, key
            assert data["duplicated"] == 0, key
            assert data["exact_text"] == data["finished"] == data["streams"], key
    text = churn_details({"churn": results})
    assert text.count("**Rolling restart**: the same clients") == 2
    assert "sharing one redis-server (`--store redis://… --processes 2`)" in text
    assert "sharing a six-node Redis Cluster" in text
    assert text.count("| Transport | Streams |") == 3
