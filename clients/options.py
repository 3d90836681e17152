"""The connection keywords, declared once: :func:`clients.connect`,
:func:`clients.stream`, :func:`clients.complete`, the ``clients.aio``
functions and both client classes take them.

``connect_timeout`` (default 10 s) bounds connecting; ``read_timeout``
(30 s) is the longest silence tolerated mid-stream (the server sends SSE
heartbeats every 15 s and WebSocket pings every 20 s by default);
``reconnect`` is the :class:`ReconnectPolicy` (default: 5 attempts);
``api_key`` is sent as ``Authorization: Bearer KEY`` to a server that needs one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, cast

from .net import base_url
from .session import ReconnectPolicy

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Options", "OPTION_NAMES", "ClientSettings", "split_options"]


class Options(TypedDict, total=False):
    connect_timeout: float
    read_timeout: float
    reconnect: ReconnectPolicy | None
    api_key: str | None


OPTION_NAMES = frozenset(Options.__annotations__)


def split_options(params: dict[str, Any]) -> tuple[Options, dict[str, Any]]:
    """The connection options among ``params``, and the rest (the request's)."""
    options = {name: value for name, value in params.items() if name in OPTION_NAMES}
    rest = {name: value for name, value in params.items() if name not in OPTION_NAMES}
    return cast(Options, options), rest


class ClientSettings:
    """What a client holds: the server's URL (validated here) and the options."""

    def __init__(self, url: str, **options: Unpack[Options]) -> None:
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}"
            )
        base_url(url)  # validate early
        self.url = url
        self.connect_timeout = options.get("connect_timeout", 10.0)
        self.read_timeout = options.get("read_timeout", 30.0)
        self.reconnect = options.get("reconnect") or ReconnectPolicy()
        self.api_key = options.get("api_key")
