"""server/edge/screen.py: the named checks, their order, and the CORS headers
each answer carries (pure; no server). test_server.py meets the same rules
through a real server."""

from __future__ import annotations

import subprocess
import sys

from server.edge.access import AccessPolicy
from server.edge.policy import HostPolicy, OriginPolicy, RateLimiter, Refusal
from server.edge.screen import CHECKS, GATES, Request, Screen

APP = "https://app.example.com"
LISTED = (("Access-Control-Allow-Origin", APP), ("Vary", "Origin"))


def request(target: str = "/v1/models", method: str = "GET", **headers: str) -> Request:
    named = {"Host": "127.0.0.1:8888", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return Request.parse(method, target, named, "http", "10.0.0.1")


def screen(**fields: object) -> Screen:
    defaults: dict[str, object] = {
        "hosts": HostPolicy.build("127.0.0.1"),
        "origins": OriginPolicy((APP,)),
    }
    return Screen(**{**defaults, **fields})  # type: ignore[arg-type]


def refused(answer: tuple[Refusal | None, object]) -> tuple[int, str] | None:
    refusal = answer[0]
    return None if refusal is None else (refusal.status, refusal.code)


def test_the_checks_are_named_and_ordered() -> None:
    assert [check.__name__ for check in GATES] == ["well_formed", "host_allowed"]
    assert [check.__name__ for check in CHECKS] == [
        "preflight",
        "origin_allowed",
        "no_cross_site_fetch",
        "body_size",
        "api_key",
        "start_rate",
    ]


def test_the_screen_needs_no_tornado() -> None:
    code = (
        "import sys, server.edge.screen, server.edge.redaction; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('tornado', 'asyncio')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gates_answer_without_cors_headers() -> None:
    bad = Request.parse("GET", "/sse", {}, malformed=True)
    assert screen().screen(bad) == (
        Refusal(
            400, "invalid_header", "a request header holds a control character or is malformed"
        ),
        (),
    )
    rebinding = request(Host="evil.example", Origin=APP)
    refusal, cors = screen().screen(rebinding)
    assert refusal is not None and refusal.code == "host_not_allowed" and cors == ()


def test_a_listed_origin_gets_cors_headers_on_every_answer() -> None:
    assert screen().screen(request(Origin=APP)) == (None, LISTED)
    refusal, cors = screen(access=AccessPolicy(("k",))).screen(request(Origin=APP))
    assert refusal is not None and refusal.status == 401 and cors == LISTED
    assert screen().screen(request(Origin="http://127.0.0.1:8888")) == (None, ())


def test_preflight() -> None:
    asked = request("/sse", "OPTIONS", Origin=APP, Access_Control_Request_Method="GET")
    refusal, cors = screen().screen(asked)
    assert refusal is not None and refusal.status == 204 and cors == LISTED
    assert ("Access-Control-Allow-Methods", "GET") in refusal.headers
    refusal, _ = Screen().screen(request("/cancel", "OPTIONS"))
    assert refusal is not None and refusal.status == 405
    assert refusal.message.endswith("(CORS is off: no --allowed-origin)")
    assert refusal.headers == (("Allow", "POST"),)


def test_origins() -> None:
    assert refused(screen().screen(request(Origin="http://evil.example"))) == (
        403,
        "origin_not_allowed",
    )
    assert refused(screen().screen(request("/healthz", Origin="http://evil.example"))) is None
    cross = request("/sse", Sec_Fetch_Site="cross-site")
    assert refused(screen().screen(cross)) == (403, "origin_not_allowed")
    assert refused(screen(origins=OriginPolicy(("*",))).screen(cross)) is None
    assert refused(screen().screen(request("/sse", Sec_Fetch_Site="same-origin"))) is None


def test_body_size() -> None:
    small = screen(max_body_bytes=10)
    assert refused(small.screen(request(Content_Length="10, 10"))) is None
    assert refused(small.screen(request(Content_Length="10, 11"))) == (
        400,
        "invalid_content_length",
    )
    assert refused(small.screen(request(Content_Length="-1"))) == (400, "invalid_content_length")
    assert refused(small.screen(request(Content_Length="11"))) == (413, "body_too_large")


def test_api_key() -> None:
    keyed = screen(access=AccessPolicy(("k1",)))
    refusal, _ = keyed.screen(request("/sse"))
    assert refusal is not None and refusal.code == "invalid_api_key"
    assert refusal.headers == (("WWW-Authenticate", 'Bearer realm="twinstream"'),)
    assert refused(keyed.screen(request("/sse", Authorization="Bearer k1"))) is None
    assert refused(keyed.screen(request("/sse?access_token=k1"))) == (401, "invalid_api_key")
    token, _ = keyed.access.issue_token()
    assert refused(keyed.screen(request(f"/sse?access_token={token}"))) is None
    assert refused(keyed.screen(request("/healthz"))) is None
    assert refused(keyed.screen(request("/metrics"))) == (401, "invalid_api_key")
    public = screen(access=AccessPolicy(("k1",)), public_metrics=True)
    assert refused(public.screen(request("/metrics"))) is None


def test_start_rate() -> None:
    limited = screen(limiter=RateLimiter(1, clock=lambda: 0.0))
    assert refused(limited.screen(request("/sse?prompt=hi"))) is None
    assert refused(limited.screen(request("/sse?last_event_id=S:1"))) is None  # not a start
    refusal, _ = limited.screen(request("/sse?prompt=hi"))
    assert refusal is not None and refusal.code == "rate_limited"
    assert ("Retry-After", "60") in refusal.headers
    assert limited.allow_start("10.0.0.1") is not None
    assert limited.allow_start("10.0.0.2") is None


def test_the_first_refusal_wins() -> None:
    # Too large AND keyless: the body size is checked first, as before the split.
    keyed = screen(access=AccessPolicy(("k1",)), max_body_bytes=1)
    assert refused(keyed.screen(request(Content_Length="2"))) == (413, "body_too_large")
