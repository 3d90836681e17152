"""``POST /auth/token``: a key traded for a short-lived token (server/edge/access.py)."""

from __future__ import annotations

from ..edge.access import AccessPolicy, bearer_credential
from ..metrics import Metrics
from ..wire.errors import error_json
from .base import JsonErrorHandler

__all__ = ["TokenHandler"]


class TokenHandler(JsonErrorHandler):
    """``POST /auth/token`` with ``Authorization: Bearer KEY``: a token for
    ``?access_token=`` (EventSource and WebSocket cannot send headers).
    Without keys configured it answers ``{"required": false}``."""

    def initialize(self, metrics: Metrics, access: AccessPolicy) -> None:
        self.metrics = metrics
        self.access = access

    def check_xsrf_cookie(self) -> None:
        return None

    def post(self) -> None:
        self.set_header("Cache-Control", "no-store")
        if not self.access.enabled:
            self.write({"required": False})
            return
        key = bearer_credential(self.request.headers.get("Authorization"))
        if key is None or not self.access.is_key(key):
            self.set_status(401)
            # RFC 6750 3: a 401 names the scheme the client must use.
            self.set_header("WWW-Authenticate", 'Bearer realm="twinstream"')
            # The header Tornado's write(dict) sets, as this answer always had.
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.write(
                error_json(
                    401, "invalid_api_key", "send the API key as 'Authorization: Bearer KEY'"
                )
            )
            return
        token, ttl = self.access.issue_token()
        self.write({"required": True, "token": token, "token_type": "Bearer", "expires_in": ttl})
