"""The README's Responses API snippets print what the README says: each
``python`` block is run against a real server (default pace, synthetic model)
and its output compared with the ``console`` block after it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cluster import ServerProc

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```\n```console\n(.*?)```", re.S)


def snippets() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index("### The Responses API")
    section = text[start : text.index("\n## ", start)]
    return BLOCK.findall(section)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = ServerProc("--log-level", "warning")
    yield server.url
    server.close()


def test_the_section_has_its_four_snippets() -> None:
    assert len(snippets()) == 4


@pytest.mark.parametrize("index", range(4))
def test_a_snippet_prints_what_the_readme_shows(url: str, index: int) -> None:
    code, expected = snippets()[index]
    code = "\n".join(
        line
        for line in code.splitlines()
        if not line.startswith(("from openai import OpenAI", "client = OpenAI("))
    )
    program = (
        "from openai import OpenAI\n"
        f"client = OpenAI(base_url={url + '/v1'!r}, api_key='unused')\n" + code
    )
    run = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected
