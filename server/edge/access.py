"""Who may use the server: API keys and the short-lived tokens a browser page uses.

Pure code (no tornado, no I/O but reading a keys file): the HTTP edge
(server/edge/server.py) asks :meth:`AccessPolicy.allows` once per request,
before the body is read, for every endpoint but the public ones.

A key travels only in ``Authorization: Bearer KEY``. ``EventSource`` and the
browser ``WebSocket`` cannot set headers, so a page trades the key for a
*token* (``POST /auth/token``) and puts the token in the URL
(``?access_token=T``). A token is ``EXPIRY.SIGNATURE`` (HMAC-SHA256 over the
expiry, keyed from the configured keys), so every process started with the
same keys accepts it, and it is useless after ``token_ttl`` seconds. There is
no cookie: nothing is sent by the browser on its own, so a cross-site page
cannot borrow a user's access (no CSRF).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "AccessPolicy",
    "KeyFileError",
    "load_keys_file",
    "is_public_path",
    "TOKEN_QUERY_PARAM",
]

TOKEN_QUERY_PARAM = "access_token"

# Needed by the demo page and load balancers before any key is known.
_PUBLIC_PATHS = frozenset({"/", "/healthz", "/favicon.ico", "/auth/token"})


def is_public_path(path: str) -> bool:
    """Paths served without a key: the demo page, its static files, health,
    and the token endpoint (which checks the key itself)."""
    return path in _PUBLIC_PATHS or path.startswith("/static/")


class KeyFileError(ValueError):
    """The keys file cannot be read or holds no usable key."""


def _check_key(key: str, where: str) -> str:
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise KeyFileError(f"{where}: an API key must be printable, without spaces")
    return key


def load_keys_file(path: str) -> tuple[str, ...]:
    """Keys from ``path``: one a line; blank lines and ``#`` comments ignored."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read API keys file {path}: {exc}") from None
    keys = tuple(
        _check_key(line.strip(), f"{path}:{number}")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    )
    if not keys:
        raise KeyFileError(f"API keys file {path} holds no key")
    return keys


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class AccessPolicy:
    """The configured keys (none: everything is open) and token lifetime."""

    keys: tuple[str, ...] = ()
    token_ttl: float = 600.0
    clock: Callable[[], float] = field(default=time.time, compare=False)

    @classmethod
    def from_settings(
        cls, api_key: str | None, keys_file: str | None, token_ttl: float
    ) -> AccessPolicy:
        keys: list[str] = []
        if api_key:
            keys.append(_check_key(api_key, "--api-key"))
        if keys_file:
            keys.extend(load_keys_file(keys_file))
        return cls(keys=tuple(dict.fromkeys(keys)), token_ttl=token_ttl)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    @functools.cached_property
    def _secret(self) -> bytes:
        # Derived from the keys, so processes sharing a keys file share tokens;
        # changing the keys invalidates every token.
        material = "\0".join(sorted(self.keys)).encode("utf-8")
        return hashlib.sha256(b"twinstream token v1\0" + material).digest()

    def is_key(self, given: str) -> bool:
        """Whether ``given`` is a configured key, in constant time: every key is
        compared in full, whichever matches (no early exit to time)."""
        candidate = given.encode("utf-8", "backslashreplace")
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(candidate, key.encode("utf-8"))
        return matched

    def issue_token(self) -> tuple[str, int]:
        """A token valid for ``token_ttl`` seconds, and that lifetime in whole seconds."""
        expires = int(self.clock() + self.token_ttl)
        return f"{expires}.{self._sign(expires)}", int(self.token_ttl)

    def _sign(self, expires: int) -> str:
        digest = hmac.new(self._secret, f"access:{expires}".encode("ascii"), hashlib.sha256)
        return _b64(digest.digest())

    def is_token(self, given: str) -> bool:
        """Whether ``given`` is an unexpired token signed with these keys."""
        if not self.keys:
            return False
        expires_text, dot, signature = given.partition(".")
        if not dot or not expires_text.isdigit() or len(expires_text) > 12:
            return False
        expires = int(expires_text)
        if expires < self.clock():
            return False
        return hmac.compare_digest(
            signature.encode("ascii", "replace"), self._sign(expires).encode("ascii")
        )

    def allows(self, authorization: str | None, query_tokens: Iterable[str] = ()) -> bool:
        """Whether a request may proceed: no keys configured, or
        ``Authorization: Bearer KEY|TOKEN``, or ``?access_token=TOKEN``.
        Keys are never accepted in the URL (URLs end up in logs and history)."""
        if not self.keys:
            return True
        bearer = bearer_credential(authorization)
        if bearer is not None and (self.is_key(bearer) or self.is_token(bearer)):
            return True
        return any(self.is_token(token) for token in query_tokens)


def bearer_credential(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer X`` header (scheme is
    case-insensitive, RFC 9110 11.1), or None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()
