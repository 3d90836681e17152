"""twinstream server: one LLM chat completion over SSE, WebSocket and /v1."""

from __future__ import annotations

__version__ = "0.1.0"
