"""server/edge/policy.py: Host, Origin and rate limit rules (pure; vectors)."""

from __future__ import annotations

import pytest

from server.edge.policy import (
    HostPolicy,
    OriginPolicy,
    RateLimiter,
    allowed_methods,
    normalize_origin,
    parse_host,
    starts_stream,
)


@pytest.mark.parametrize(
    "value, parsed",
    [
        ("127.0.0.1:8888", ("127.0.0.1", 8888)),
        ("LocalHost", ("localhost", None)),
        ("example.com.:443", ("example.com", 443)),
        ("[::1]:8888", ("::1", 8888)),
        ("[::1]", ("::1", None)),
        ("::1", None),  # IPv6 must be bracketed
        ("", None),
        ("a b", None),
        ("host:port", None),
        ("host:99999", None),
        ("[::1", None),
        ("[::1]x", None),
        ("user@host", None),
        ("host\x00", None),
        ("é.example", None),
    ],
)
def test_parse_host(value: str, parsed: tuple[str, int | None] | None) -> None:
    assert parse_host(value) == parsed


@pytest.mark.parametrize(
    "origin, normal",
    [
        ("http://127.0.0.1:8888", ("http", "127.0.0.1", 8888)),
        ("https://Example.com", ("https", "example.com", 443)),
        ("http://example.com/", ("http", "example.com", 80)),
        ("null", None),
        ("file://", None),
        ("http://example.com/path", None),
        ("http://user@example.com", None),
        ("http://example.com:99999", None),
        ("", None),
    ],
)
def test_normalize_origin(origin: str, normal: tuple[str, str, int] | None) -> None:
    assert normalize_origin(origin) == normal


def test_default_hosts_are_the_bound_address_and_localhost() -> None:
    hosts = HostPolicy.build("10.1.2.3")
    for good in ("10.1.2.3:8888", "localhost:8888", "127.0.0.1", "[::1]:1"):
        assert hosts.check(good) is None, good
    refusal = hosts.check("evil.example:8888")  # DNS rebinding
    assert refusal is not None and (refusal.status, refusal.code) == (421, "host_not_allowed")
    missing = hosts.check(None)
    assert missing is not None and missing.code == "invalid_host"


def test_wildcard_binding_uses_the_machine_names_and_extra_hosts() -> None:
    hosts = HostPolicy.build("0.0.0.0", ["chat.example.com"], machine_names=["box", "192.0.2.7"])
    assert hosts.check("box:80") is None
    assert hosts.check("192.0.2.7") is None
    assert hosts.check("chat.example.com") is None
    assert hosts.check("other.example.com") is not None
    assert HostPolicy.build("127.0.0.1", ["*"]).check("anything") is None


def test_bad_extra_host_is_an_error() -> None:
    with pytest.raises(ValueError):
        HostPolicy.build("127.0.0.1", ["not a host"])


def test_origin_compares_scheme_host_and_port() -> None:
    origins = OriginPolicy()
    assert origins.allows("http://127.0.0.1:8888", "http", "127.0.0.1:8888")
    assert origins.allows("http://localhost", "http", "localhost:80")
    assert not origins.allows("https://127.0.0.1:8888", "http", "127.0.0.1:8888")  # scheme
    assert not origins.allows("http://127.0.0.1:9999", "http", "127.0.0.1:8888")  # port
    assert not origins.allows("http://evil.example:8888", "http", "127.0.0.1:8888")
    assert not origins.allows("null", "http", "127.0.0.1:8888")
    assert not origins.cors


def test_listed_origins_and_star() -> None:
    origins = OriginPolicy(("https://app.example.com",))
    assert origins.cors
    assert origins.allows("https://app.example.com:443", "http", "127.0.0.1:8888")
    assert not origins.allows("http://app.example.com", "http", "127.0.0.1:8888")
    assert OriginPolicy(("*",)).allows("http://anything", "http", "x")


def test_rate_limiter_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == pytest.approx(20.0)  # one start per 20 s
    assert limiter.take("b") == 0.0  # per address
    now[0] += 20.0
    assert limiter.take("a") == 0.0
    refusal = limiter.refusal(19.2)
    assert refusal.status == 429 and ("Retry-After", "20") in refusal.headers
    assert RateLimiter(per_minute=0).take("a") == 0.0


def test_rate_limiter_memory_is_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, clock=lambda: now[0], max_entries=10)
    for i in range(10):
        limiter.take(f"10.0.0.{i}")
    now[0] += 120  # every bucket refilled
    limiter.take("10.0.1.1")
    assert len(limiter._buckets) <= 2


@pytest.mark.parametrize(
    "method, path, query, header, starts",
    [
        ("GET", "/sse", "prompt=hi", None, True),
        ("GET", "/sse", "last_event_id=S:1", None, False),
        ("GET", "/sse", "prompt=hi", "S:1", False),
        ("GET", "/sse", "stream=S", None, False),
        ("POST", "/streams", "", None, True),
        ("POST", "/v1/chat/completions", "", None, True),
        ("GET", "/v1/models", "", None, False),
        ("POST", "/cancel", "stream=S", None, False),
    ],
)
def test_starts_stream(
    method: str, path: str, query: str, header: str | None, starts: bool
) -> None:
    assert starts_stream(method, path, query, header) is starts


@pytest.mark.parametrize(
    ("path", "chat_path", "methods"),
    [
        ("/api/chat", "/api/chat", "GET, POST"),
        ("/api/chat/c1/stop", "/api/chat", "POST"),
        ("/api/chat/c1/stream", "/api/chat", "GET"),
        ("/chat", "/chat", "GET, POST"),
        ("/api/chat", "/chat", "GET"),
        ("/v1/chat/completions", "/api/chat", "POST"),
    ],
)
def test_allowed_methods_of_the_chat_path(path: str, chat_path: str, methods: str) -> None:
    assert allowed_methods(path, chat_path) == methods


def test_posting_to_the_chat_path_starts_a_stream_and_its_other_paths_do_not() -> None:
    assert starts_stream("POST", "/api/chat", "", None)
    assert starts_stream("POST", "/chat", "", None, "/chat")
    assert not starts_stream("POST", "/api/chat/c1/stop", "", None)
    assert not starts_stream("GET", "/api/chat/c1/stream", "", None)
    assert not starts_stream("GET", "/api/chat", "", None)  # the socket: its send frames count
