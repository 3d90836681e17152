"""The README says what the code prints and what the recorded run measured.

* its samples (the ``curl -N`` transcript, the ``--stats`` output) are produced again,
  by a real server and the real client, and compared with stream ids, clocks and
  timings normalised -- a change to the wire format or the CLI fails here until
  ``python -m benchmarks readme`` is run;
* its results block must be exactly what ``docs/benchmark-run.json`` renders to,
  its scale-out block what ``docs/scaleout-run.json`` renders to, and its rounds
  block what ``docs/rounds-run.json`` renders to.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.readme import (
    README,
    ROUNDS_RECORD,
    RUN_RECORD,
    SCALEOUT_RECORD,
    abbreviate_transcript,
    curl_command,
    curl_sample,
    normalise,
    read_block,
    replace_block,
    sort_runs,
    stats_command,
    stats_sample,
    update_readme,
)
from benchmarks.report.headtohead import rounds_run_section
from benchmarks.report.readme import render_results
from benchmarks.report.scaleout import readme_section
from benchmarks.servers import TWINSTREAM, ServerProcess

BODY = (
    "id: abc:0\nretry: 1000\n"
    'data: {"type":"start","stream":"abc","seq":0,"model":"m","created":1,"t":1.5}\n\n'
    'id: abc:1\ndata: {"type":"delta","stream":"abc","seq":1,"content":"Hi","t":1.6}\n\n'
    'id: abc:2\ndata: {"type":"delta","stream":"abc","seq":2,"content":" there","t":1.7}\n\n'
    'id: abc:3\ndata: {"type":"done","stream":"abc","seq":3,"finish_reason":"length"}\n\n'
)


def test_transcripts_keep_two_events_and_the_last_with_their_first_fields() -> None:
    assert abbreviate_transcript(BODY) == (
        "id: abc:0\nretry: 1000\n"
        'data: {"type":"start","stream":"abc","seq":0,"model":"m",...}\n\n'
        'id: abc:1\ndata: {"type":"delta","stream":"abc","seq":1,"content":"Hi",...}\n'
        "...\n"
        'id: abc:3\ndata: {"type":"done","stream":"abc","seq":3,"finish_reason":"length"}'
    )
    # CRLF line ends, byte for byte the same transcript
    assert abbreviate_transcript(BODY.replace("\n", "\r\n")) == abbreviate_transcript(BODY)
    assert abbreviate_transcript("") == ""


def test_normalise_hides_what_changes_between_runs_and_keeps_counts() -> None:
    line = (
        "time to first token 256.6 ms, 1,195.5 tokens/s, 15 tokens, 17 events, 1783 bytes received"
    )
    assert normalise(line) == (
        "time to first token <n> ms, <n> tokens/s, 15 tokens, 17 events, <n> bytes received"
    )
    assert normalise('id: kD0y-Ts_rB:3\ndata: {"stream":"kD0y-Ts_rB","t":17.5,"created":17}') == (
        'id: <id>:3\ndata: {"stream":"<id>","t":<time>,"created":<time>}'
    )


def test_blocks_are_replaced_between_their_markers_only() -> None:
    text = "a\n<!-- generated: x (python -m benchmarks readme) -->\nold\n<!-- end: x -->\nb\n"
    replaced = replace_block(text, "x", "new\nlines")
    assert read_block(replaced, "x") == "new\nlines"
    assert replaced.startswith("a\n") and replaced.endswith("<!-- end: x -->\nb\n")
    with pytest.raises(ValueError, match="no block 'y'"):
        replace_block(text, "y", "z")


def test_readme_samples_match_what_the_code_prints() -> None:
    readme = README.read_text(encoding="utf-8")
    with ServerProcess(TWINSTREAM.command(30.0, 0.25)) as server:
        curl = f"$ {curl_command()}\n{curl_sample(server.url)}"
        stats = stats_sample(server.url)
    assert normalise(read_block(readme, "curl-sample")) == normalise(f"```console\n{curl}\n```")
    assert normalise(read_block(readme, "stats-sample")) == normalise(f"```console\n{stats}\n```")
    assert f"$ {stats_command()}" in readme


def test_readme_results_are_rendered_from_the_recorded_run() -> None:
    record = json.loads(Path(RUN_RECORD).read_text(encoding="utf-8"))
    assert read_block(README.read_text(encoding="utf-8"), "benchmark-results") == (
        render_results(record)
    )
    # a full run, with every part the verdict draws on
    assert record["meta"]["config"]["name"] == "full"
    for part in ("latency", "throughput", "reconnect", "network", "browser", "churn"):
        assert part in record["meta"]["parts"]
    # the stream core's targets, decided on interleaved rounds, not on one sample each
    assert record["head_to_head"]["rounds"] >= 2
    block = read_block(README.read_text(encoding="utf-8"), "benchmark-results")
    assert "measured head to head" in block


def test_readme_scaleout_figures_are_rendered_from_the_recorded_run() -> None:
    record = json.loads(Path(SCALEOUT_RECORD).read_text(encoding="utf-8"))
    block = read_block(README.read_text(encoding="utf-8"), "scaleout-results")
    assert block == readme_section(record)
    assert record["meta"]["parts"] == ["scaleout"]
    assert set(record["scaleout"]["by_transport"]) == {"sse", "ws"}


def test_readme_rounds_figures_are_rendered_from_the_recorded_run() -> None:
    record = json.loads(Path(ROUNDS_RECORD).read_text(encoding="utf-8"))
    block = read_block(README.read_text(encoding="utf-8"), "rounds-results")
    assert block == rounds_run_section(record)
    assert record["meta"]["parts"] == ["headtohead"]
    # a longer run than the suite's own rounds, of fewer loads
    assert record["head_to_head"]["rounds"] > record["meta"]["config"]["head_to_head_rounds"] / 2
    assert record["head_to_head"]["rounds"] >= 40
    assert "sse-starlette" not in record["head_to_head"]["contenders"]


def test_runs_are_told_apart_by_their_parts(tmp_path: Path) -> None:
    suite, scaleout, other = tmp_path / "suite", tmp_path / "scaleout", tmp_path / "other"
    rounds = tmp_path / "rounds"
    for folder, results in (
        (suite, {"latency": {}, "head_to_head": {}}),
        (scaleout, {"scaleout": {}}),
        (rounds, {"meta": {}, "head_to_head": {}}),
        (other, {"meta": {}}),
    ):
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    assert sort_runs([scaleout, suite]) == (suite, scaleout, None)
    assert sort_runs([rounds, suite]) == (suite, None, rounds)
    assert sort_runs([]) == (None, None, None)
    with pytest.raises(ValueError, match="neither a suite run, a scaleout run nor a headtohead"):
        sort_runs([other])
    with pytest.raises(ValueError, match="two suite runs"):
        sort_runs([suite, suite])
    with pytest.raises(ValueError, match="two head-to-head runs"):
        sort_runs([rounds, rounds])
    with pytest.raises(ValueError, match="cannot read it"):
        sort_runs([tmp_path / "missing"])


def test_the_readme_command_rewrites_every_block(tmp_path: Path) -> None:
    run, scaleout_run = tmp_path / "run", tmp_path / "scaleout"
    rounds_run = tmp_path / "rounds"
    records = ((run, RUN_RECORD), (scaleout_run, SCALEOUT_RECORD), (rounds_run, ROUNDS_RECORD))
    for folder, record in records:
        folder.mkdir()
        (folder / "results.json").write_text(Path(record).read_text(encoding="utf-8"))
    readme = tmp_path / "README.md"
    original = README.read_text(encoding="utf-8")
    stale = original
    names = (
        "benchmark-results",
        "scaleout-results",
        "rounds-results",
        "curl-sample",
        "stats-sample",
    )
    for name in names:
        stale = replace_block(stale, name, "stale")
    readme.write_text(stale, encoding="utf-8")

    message = update_readme(run, readme, scaleout_run, rounds_run)

    assert str(run / "results.json") in message
    assert str(scaleout_run / "results.json") in message
    assert str(rounds_run / "results.json") in message
    text = readme.read_text(encoding="utf-8")
    for name in names:
        assert read_block(text, name) != "stale"
        assert normalise(read_block(text, name)) == normalise(read_block(original, name))
    assert README.read_text(encoding="utf-8") == original  # the real README untouched


def test_the_run_line_says_when_and_how_a_run_was_resumed() -> None:
    from benchmarks.report.readme import _resumptions

    assert _resumptions({}) == ""
    meta = {
        "resumptions": [
            {
                "started": "2026-12-07 21:19:24",
                "command": "python -m benchmarks --out R --resume",
                "parts": ["capacity", "http2"],
                "changed_settings": {"capacity_max_tokens": {"was": 300, "now": 210}},
                "commit": "c904784",
            }
        ]
    }
    assert _resumptions(meta) == (
        " Resumed on 2026-12-07 at commit c904784 (`python -m benchmarks --out R --resume`)"
        " for capacity, http2, with `capacity_max_tokens` 300 → 210."
    )
