"""server/access.py: keys, tokens and which paths are public (pure; vectors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.edge.access import (
    AccessPolicy,
    KeyFileError,
    bearer_credential,
    is_public_path,
    load_keys_file,
)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_no_keys_means_open() -> None:
    policy = AccessPolicy()
    assert not policy.enabled
    assert policy.allows(None)
    assert not policy.is_token("123.abc")  # no keys: nothing can sign a token


@pytest.mark.parametrize(
    "header, allowed",
    [
        ("Bearer k1", True),
        ("bearer k2", True),  # the scheme is case-insensitive
        ("Bearer  k1 ", True),
        ("Bearer k3", False),
        ("Bearer k1x", False),
        ("Bearer k", False),
        ("Basic k1", False),
        ("k1", False),
        ("Bearer", False),
        ("", False),
        (None, False),
    ],
)
def test_keys_travel_as_bearer(header: str | None, allowed: bool) -> None:
    assert AccessPolicy(keys=("k1", "k2")).allows(header) is allowed


def test_a_key_is_never_accepted_in_the_url() -> None:
    assert not AccessPolicy(keys=("k1",)).allows(None, ["k1"])


def test_tokens_work_until_they_expire() -> None:
    clock = Clock()
    policy = AccessPolicy(keys=("k1",), token_ttl=60, clock=clock)
    token, ttl = policy.issue_token()
    assert ttl == 60
    assert policy.allows(None, [token])
    assert policy.allows(f"Bearer {token}")
    clock.now += 59
    assert policy.is_token(token)
    clock.now += 2
    assert not policy.is_token(token)
    assert not policy.allows(None, [token])


def test_tokens_are_bound_to_the_keys() -> None:
    clock = Clock()
    token, _ = AccessPolicy(keys=("k1",), clock=clock).issue_token()
    assert AccessPolicy(keys=("k1",), clock=clock).is_token(token)  # another process, same key
    assert not AccessPolicy(keys=("other",), clock=clock).is_token(token)
    expires, _, signature = token.partition(".")
    forged = f"{int(expires) + 3600}.{signature}"  # a later expiry with the old signature
    assert not AccessPolicy(keys=("k1",), clock=clock).is_token(forged)


@pytest.mark.parametrize(
    "junk", ["", ".", "abc", "1.", ".sig", "-1.sig", "9" * 40 + ".x", "1.2.3", "\x00.\xff", "é.é"]
)
def test_malformed_tokens_are_refused(junk: str) -> None:
    assert not AccessPolicy(keys=("k1",)).is_token(junk)


def test_every_key_is_compared() -> None:
    policy = AccessPolicy(keys=("first", "second", "third"))
    assert [policy.is_key(k) for k in ("first", "second", "third", "fourth")] == [
        True,
        True,
        True,
        False,
    ]
    assert not policy.is_key("\udcff")  # a lone surrogate from a header does not crash


def test_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# operators\nalpha\n\n  beta  \n# old: gamma\n")
    assert load_keys_file(str(path)) == ("alpha", "beta")
    policy = AccessPolicy.from_settings("cli-key", str(path), 30)
    assert policy.keys == ("cli-key", "alpha", "beta")


@pytest.mark.parametrize("content", ["", "# nothing\n", "two words\n"])
def test_bad_keys_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(KeyFileError):
        load_keys_file(str(path))


def test_missing_keys_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read API keys file"):
        load_keys_file(str(tmp_path / "absent"))


def test_bearer_credential() -> None:
    assert bearer_credential("Bearer abc") == "abc"
    assert bearer_credential("BEARER abc") == "abc"
    assert bearer_credential("Token abc") is None


@pytest.mark.parametrize(
    "path, public",
    [
        ("/", True),
        ("/healthz", True),
        ("/static/app.js", True),
        ("/auth/token", True),
        ("/sse", False),
        ("/ws", False),
        ("/v1/chat/completions", False),
        ("/cancel", False),
        ("/debug/drop", False),
        ("/metrics", False),
        ("/nope", False),
    ],
)
def test_public_paths(path: str, public: bool) -> None:
    assert is_public_path(path) is public
