"""``python -m benchmarks readme [DIR ...]``: the README's figures and samples, from real runs.

Nothing in the README's benchmark section or its samples is typed by hand:

* the **results block** (run line, headline table, link-profile table, "what to
  choose") is rendered from a benchmark run's ``results.json`` -- ``DIR``, or the
  newest full run under ``benchmarks/results/``. The figures it uses are kept in
  ``docs/benchmark-run.json`` (the run without its plot data), so a test can
  check that the README still says what that run measured;
* the **scale-out block** (memory store against Redis, one and two processes)
  is rendered from a run of the ``scaleout`` part, which a full run does not
  include: pass its folder too. Its figures are kept in
  ``docs/scaleout-run.json``; without such a run the block is left as it is;
* the **rounds block** is rendered from a run of the ``headtohead`` part alone
  (many rounds of fewer loads: the closest targets measured precisely); its figures are
  kept in ``docs/rounds-run.json``, and without such a run the block is left as it is;
* the **samples** (the ``curl -N`` transcript of ``GET /sse`` and the clients'
  ``--stats`` line) are produced by a server this command starts, through the
  code as it is now; a test runs the same code and compares, with stream ids,
  timestamps and timings normalised.

Each generated block sits between ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->`` markers in ``README.md``.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

from .config import SERVER_DEFAULTS
from .parts import PARTS, ReadmeBlock
from .report.readme import render_results
from .servers import REPO_ROOT, TWINSTREAM, ServerProcess

__all__ = [
    "README",
    "RUN_RECORD",
    "SCALEOUT_RECORD",
    "ROUNDS_RECORD",
    "sort_runs",
    "curl_sample",
    "stats_sample",
    "abbreviate_transcript",
    "normalise",
    "read_block",
    "replace_block",
    "update_readme",
]

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
RUN_RECORD = DOCS / "benchmark-run.json"
SCALEOUT_RECORD = DOCS / "scaleout-run.json"
ROUNDS_RECORD = DOCS / "rounds-run.json"
CURL_PROMPT, CURL_MAX_TOKENS = "Tell me a story", 20
STATS_PROMPT, STATS_MAX_TOKENS = "Why is the sky blue?", 15
DOC_URL = "http://127.0.0.1:8888"  # what the README's commands use


# -- samples ------------------------------------------------------------------------------


def curl_command() -> str:
    query = f"prompt={quote_plus(CURL_PROMPT)}&max_tokens={CURL_MAX_TOKENS}"
    return f"curl -N '{DOC_URL}/sse?{query}'"


def sse_body(base_url: str) -> str:
    """What ``curl -N`` prints for the README's request: the response body, as sent."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.request(
            "GET", f"/sse?prompt={quote_plus(CURL_PROMPT)}&max_tokens={CURL_MAX_TOKENS}"
        )
        response = connection.getresponse()
        return response.read().decode("utf-8")
    finally:
        connection.close()


def _abbreviate_json(line: str, keep: int = 4) -> str:
    """``data: {...}`` with only its first ``keep`` fields, then ``...``."""
    name, _, payload = line.partition(": ")
    try:
        event = json.loads(payload)
    except ValueError:
        return line
    if not isinstance(event, dict) or len(event) <= keep:
        return line
    head = dict(list(event.items())[:keep])
    return f"{name}: " + json.dumps(head, separators=(",", ":"), ensure_ascii=False)[:-1] + ",...}"


def abbreviate_transcript(body: str) -> str:
    """The first two events and the last of an SSE body, each ``data:`` cut to its first
    fields, with ``...`` for what is left out."""
    events = [e for e in body.replace("\r\n", "\n").split("\n\n") if e.strip()]
    if not events:
        return ""
    chosen = events[:2] + (["..."] if len(events) > 3 else []) + events[2:][-1:]
    lines: list[str] = []
    for event in chosen:
        if event == "...":
            lines.append("...")
            continue
        if lines and lines[-1] != "...":
            lines.append("")
        for line in event.split("\n"):
            lines.append(_abbreviate_json(line) if line.startswith("data:") else line)
    return "\n".join(lines)


def curl_sample(base_url: str) -> str:
    return abbreviate_transcript(sse_body(base_url))


def stats_command() -> str:
    return (
        f'python3 -m clients "{STATS_PROMPT}" --transport ws --stats '
        f"--max-tokens {STATS_MAX_TOKENS}"
    )


def stats_sample(base_url: str) -> str:
    """The CLI's output for :func:`stats_command`: the text, then the ``--stats`` line."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clients",
            STATS_PROMPT,
            "--transport",
            "ws",
            "--stats",
            "--max-tokens",
            str(STATS_MAX_TOKENS),
            "--url",
            base_url.rstrip("/"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the client failed: {done.stderr.strip()}")
    text = done.stdout.strip("\n")
    stats = done.stderr.strip().splitlines()[-1]
    return f"$ {stats_command()}\n{text}\n{stats}"


_NORMALISE = (
    (re.compile(r'"stream":"[A-Za-z0-9_-]+"'), '"stream":"<id>"'),
    (re.compile(r"^id: [A-Za-z0-9_-]+:", re.MULTILINE), "id: <id>:"),
    (re.compile(r'"(t|created)":[0-9.]+'), r'"\1":<time>'),
    (re.compile(r"[0-9][0-9.,]* (ms|tokens/s|bytes received)"), r"<n> \1"),
)


def normalise(sample: str) -> str:
    """A sample with what differs from run to run (stream ids, clocks, timings, byte
    counts that include them) replaced by placeholders; token and event counts stay."""
    for pattern, replacement in _NORMALISE:
        sample = pattern.sub(replacement, sample)
    return sample.strip()


# -- README blocks --------------------------------------------------------------------------


def _markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- generated: {name} (python -m benchmarks readme) -->",
        f"<!-- end: {name} -->",
    )


def read_block(text: str, name: str) -> str:
    begin, end = _markers(name)
    start = text.find(begin)
    stop = text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"README has no block {name!r} ({begin} ... {end})")
    return text[start + len(begin) : stop].strip("\n")


def replace_block(text: str, name: str, content: str) -> str:
    begin, end = _markers(name)
    read_block(text, name)  # both markers are there
    start = text.find(begin) + len(begin)
    return text[:start] + "\n" + content.strip("\n") + "\n" + text[text.find(end) :]


def _fenced(content: str, language: str = "") -> str:
    return f"```{language}\n{content}\n```"


def _trim(data: Any) -> Any:
    """The results without plot data (``cdf_ms``): what the README's figures come from."""
    if isinstance(data, dict):
        return {k: _trim(v) for k, v in data.items() if k != "cdf_ms"}
    if isinstance(data, list):
        return [_trim(v) for v in data]
    return data


def newest_full_run(root: Path | None = None) -> Path | None:
    root = root or (REPO_ROOT / "benchmarks" / "results")
    runs = sorted(root.glob("*/results.json"), reverse=True) if root.exists() else []
    for path in runs:
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {})
        except (OSError, ValueError):
            continue
        if meta.get("config", {}).get("name") == "full":
            return path.parent
    return None


def sort_runs(folders: Sequence[Path]) -> tuple[Path | None, Path | None, Path | None]:
    """``(suite run, scale-out run, rounds run)`` among ``folders``: a folder whose
    results have the suite's parts is the first, one with the ``scaleout`` part the
    second (one folder can be both), one with head-to-head rounds and no other
    suite part the third. ValueError, saying what to pass, for anything else."""
    suite: Path | None = None
    scaleout: Path | None = None
    rounds: Path | None = None
    for folder in folders:
        path = folder / "results.json"
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read it ({exc})") from None
        used = False
        if "scaleout" in results:
            if scaleout is not None:
                raise ValueError(f"two scale-out runs given: {scaleout} and {folder}")
            scaleout, used = folder, True
        if any(part in results for part in ("latency", "throughput")):
            if suite is not None:
                raise ValueError(f"two suite runs given: {suite} and {folder}")
            suite, used = folder, True
        elif "head_to_head" in results:
            if rounds is not None:
                raise ValueError(f"two head-to-head runs given: {rounds} and {folder}")
            rounds, used = folder, True
        if not used:
            raise ValueError(
                f"{folder}: neither a suite run, a scaleout run nor a headtohead run "
                "(python -m benchmarks --out DIR, python -m benchmarks scaleout --out DIR, "
                "python -m benchmarks headtohead --out DIR)"
            )
    return suite, scaleout, rounds


def _update_block(readme: Path, folder: Path, block: ReadmeBlock) -> str:
    """Rewrite ``block`` of ``readme`` from the run in ``folder`` (and its record under
    docs/ when ``readme`` is the real README); returns what was done."""
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    section = block.render(results)
    if section is None:
        raise SystemExit(f"{folder}: {block.missing}")
    text = replace_block(readme.read_text(encoding="utf-8"), block.block, section)
    readme.write_text(text, encoding="utf-8")
    if readme == README:
        record = {"meta": results.get("meta", {}), block.results_key: results[block.results_key]}
        (DOCS / block.record).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return f"{block.what} from {folder / 'results.json'}"


def update_readme(
    run: Path | None = None,
    readme: Path = README,
    scaleout_run: Path | None = None,
    rounds_run: Path | None = None,
) -> str:
    """Rewrite the generated blocks of ``readme``: the results from ``run`` (default:
    the newest full run), the scale-out block from ``scaleout_run`` and the rounds
    block from ``rounds_run`` if given, the samples from a server started now.
    Returns what was done."""
    done = []
    for part in PARTS:
        folder = {"headtohead": rounds_run, "scaleout": scaleout_run}.get(part.name)
        if part.readme is None or folder is None:
            continue
        done.append(_update_block(readme, folder, part.readme))
    if run is None:
        run = newest_full_run()
        if run is None:
            raise SystemExit(
                "no full run under benchmarks/results/: run `python -m benchmarks` first, "
                "or pass a run folder: python -m benchmarks readme DIR"
            )
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    record = _trim(results)
    text = readme.read_text(encoding="utf-8")
    text = replace_block(text, "benchmark-results", render_results(record))
    # what the README's commands run: a server with its defaults
    pace, first_token = SERVER_DEFAULTS.tokens_per_second, SERVER_DEFAULTS.first_token_latency
    with ServerProcess(TWINSTREAM.command(pace, first_token)) as server:
        curl = curl_sample(server.url)
        stats = stats_sample(server.url)
    text = replace_block(text, "curl-sample", _fenced(f"$ {curl_command()}\n{curl}", "console"))
    text = replace_block(text, "stats-sample", _fenced(stats, "console"))
    readme.write_text(text, encoding="utf-8")
    if readme == README:
        RUN_RECORD.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    done.insert(0, f"results from {run / 'results.json'}")
    return f"README.md: {', '.join(done)}, samples from a server just started"
