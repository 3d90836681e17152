"""Log lines without prompts, stream ids or tokens: the access log line of
every request, the line of a request refused at the edge, and Tornado's own
messages (which quote the request line). Pure code but for ``logging``.

A URI keeps its endpoint names and ``max_tokens``; every other path segment
and query value is replaced by ``[redacted]`` (prompts are user data, and a
stream id or token in a log is a credential to someone who reads it).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

if TYPE_CHECKING:  # only for annotations: this module does not need Tornado to run
    import tornado.web

__all__ = [
    "REDACTED",
    "redact_uri",
    "redact_text",
    "log_request",
    "log_refusal",
    "install_log_redaction",
]

access_log = logging.getLogger("tornado.access")


# Query parameters whose values may be logged; every other value is a prompt,
# a stream id, a token, or unknown, and is replaced.
_LOGGABLE_PARAMS = frozenset({"max_tokens"})
# Path segments that name endpoints; any other segment may be an id or user data.
_LOGGABLE_SEGMENTS = frozenset(
    {
        "",
        "sse",
        "ws",
        "cancel",
        "debug",
        "drop",
        "v1",
        "chat",
        "completions",
        "models",
        "healthz",
        "metrics",
        "auth",
        "token",
        "streams",
        "events",
        "favicon.ico",
        # the Responses API and the AI SDK's chat transports (at /api/chat by default)
        "responses",
        "input_items",
        "stream",
        "stop",
        "api",
    }
)
_SAFE_FILE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
REDACTED = "[redacted]"


def redact_uri(uri: str) -> str:
    """A request URI fit for a log line: endpoint names kept, every other path
    segment and every query value but ``max_tokens`` replaced by ``[redacted]``."""
    path, _, query = uri.partition("?")
    segments = path.split("/")
    if path.startswith("/static/"):
        kept = [s if _SAFE_FILE.match(s) else REDACTED for s in segments[2:]]
        clean_path = "/static/" + "/".join(kept)
    else:
        clean_path = "/".join(s if s in _LOGGABLE_SEGMENTS else REDACTED for s in segments)
    if not query:
        return clean_path[:200]
    params = []
    for name, value in parse_qsl(query, keep_blank_values=True)[:20]:
        shown_name = quote(name[:40], safe="_-")
        shown = quote(value[:20], safe="") if name in _LOGGABLE_PARAMS else REDACTED
        params.append(f"{shown_name}={shown}")
    return (clean_path[:200] + "?" + "&".join(params))[:600]


_URI_IN_TEXT = re.compile(r"(?<![\w/])(/[^\s?'\"]*)(\?[^\s'\"]*)?")


def redact_text(text: str) -> str:
    """Redact every request path (and its query) that appears in ``text``
    (a log message from Tornado, which quotes the request line)."""
    return _URI_IN_TEXT.sub(lambda m: redact_uri(m.group(0)), text)


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log line (the ``log_function`` app setting): status, method,
    the URI with prompts, stream ids and tokens redacted, client, duration."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    request = handler.request
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        redact_uri(request.uri or ""),
        request.remote_ip,
        1000.0 * request.request_time(),
    )


def log_refusal(status: int, method: str, uri: str, remote_ip: str) -> None:
    """The access log line of a request the edge answered itself (no handler ran)."""
    access_log.log(
        logging.INFO if status < 500 else logging.WARNING,
        "%d %s %s (%s) refused at the edge",
        status,
        method[:16],
        redact_uri(uri),
        remote_ip,
    )


class _RedactingFilter(logging.Filter):
    """Tornado's own messages quote the request line (``400 GET /sse?prompt=...``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("tornado") and record.name != "tornado.access":
            message = record.getMessage()
            if "/" in message:
                record.msg, record.args = redact_text(message), None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add the redacting filter to every handler of ``logger`` (root by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, _RedactingFilter) for f in handler.filters):
            handler.addFilter(_RedactingFilter())
