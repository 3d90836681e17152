"""What the property-based tests share: a server that must survive whatever
they send, and a strategy for arbitrary JSON values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import strategies as st
from support.server_process import ServerProcess

#: no pacing, no start-rate limit, a small prompt limit (so oversize bodies are reached)
FUZZ_ARGS = ("--tokens-per-second", "0", "--streams-per-minute", "0", "--max-prompt-bytes", "2048")


@contextmanager
def surviving_server() -> Iterator[ServerProcess]:
    """A server for a module of fuzzing; on the way out it must still answer
    ``/healthz``, and its log must hold no traceback and no ``internal_error``."""
    with ServerProcess(*FUZZ_ARGS) as process:
        yield process
        status, _, _ = process.request("GET", "/healthz")
        assert status == 200, "the server stopped serving"
        process.stop()
        logs = process.logs()
        assert "Traceback" not in logs, logs[-3000:]
        assert "internal_error" not in logs


def json_values(text_size: int | None = None) -> st.SearchStrategy[Any]:
    """Any JSON value, nested a little (at most 12 leaves)."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=text_size),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=12,
    )
