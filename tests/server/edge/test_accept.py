"""server/edge/accept.py: the 503 written to a connection refused at the
descriptor limit (test_server_limits.py drives the limit itself)."""

from __future__ import annotations

from server.edge import accept


def test_the_refusal_is_the_documented_json_503_byte_for_byte() -> None:
    body = (
        b'{"error": {"message": "the server is at its connection limit; retry shortly", '
        b'"type": "server_error", "param": null, "code": "server_busy"}}'
    )
    assert accept.REFUSAL == (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
