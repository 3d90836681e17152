"""server/edge/redaction.py: log lines without prompts, stream ids or tokens (vectors)."""

from __future__ import annotations

import pytest

from server.edge.redaction import redact_text, redact_uri

SECRET_PROMPT = "my secret plan"


@pytest.mark.parametrize(
    "uri, logged",
    [
        ("/sse?prompt=my+secret+plan&max_tokens=5", "/sse?prompt=[redacted]&max_tokens=5"),
        ("/sse?last_event_id=kD0y1Ts7rB3f2wqS0d6jXQ%3A3", "/sse?last_event_id=[redacted]"),
        ("/cancel?stream=kD0y1Ts7rB3f2wqS0d6jXQ", "/cancel?stream=[redacted]"),
        ("/sse?access_token=123.abc", "/sse?access_token=[redacted]"),
        ("/streams/kD0y1Ts7rB3f2wqS0d6jXQ/events", "/streams/[redacted]/events"),
        ("/my%20secret%20plan", "/[redacted]"),
        ("/static/app.js?v=1", "/static/app.js?v=[redacted]"),
        ("/healthz", "/healthz"),
        ("/v1/responses/resp_kD0y1Ts7rB3f2wqS0d6jXQ", "/v1/responses/[redacted]"),
        (
            "/v1/responses/resp_x/input_items?limit=5",
            "/v1/responses/[redacted]/input_items?limit=[redacted]",
        ),
        ("/v1/responses/resp_x/cancel", "/v1/responses/[redacted]/cancel"),
        ("/api/chat/my-secret-chat/stream", "/api/chat/[redacted]/stream"),
        ("/api/chat/my-secret-chat/stop", "/api/chat/[redacted]/stop"),
    ],
)
def test_redact_uri(uri: str, logged: str) -> None:
    assert redact_uri(uri) == logged


def test_redact_text_finds_request_lines() -> None:
    message = "400 GET /sse?prompt=my+secret+plan (127.0.0.1): prompt too long"
    assert redact_text(message) == "400 GET /sse?prompt=[redacted] (127.0.0.1): prompt too long"
    assert "secret" not in redact_text("uri='/x?prompt=secret', version='HTTP/1.1'")
