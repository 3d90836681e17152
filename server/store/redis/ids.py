"""The ids of the streams this process starts, chosen so that one script call
per master writes them all.

A stream's keys hash on the first :data:`~.keys.TAG_CHARS` characters of its
id (:mod:`.keys`). Were ids wholly random, a thousand live streams would sit in
a thousand slots, and a flush would be one script call per stream (a script
may only touch the keys of one slot). On a cluster this process therefore
keeps one tag per master, found by trying random tags against the slot map,
and starts its streams on the masters in turn, each under that master's tag:
a flush is then about one call per master. Each tag serves for
:data:`TAG_LIFETIME` seconds before a fresh one is drawn, so that over time a
process's streams still spread over many slots (what ``CLUSTER REBALANCE``
and resharding move), and a tag whose slot has moved to another master is
replaced at once.

The rest of the id is 128 random bits, as on one Redis: the tag is not a
secret, the rest is what makes a stream unguessable."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable

from ...core.log import new_stream_id
from .keys import TAG_CHARS, Keys
from .routes import Routes

__all__ = ["StreamIds", "TAG_LIFETIME"]

#: Seconds one tag names the new streams of one master.
TAG_LIFETIME = 30.0
#: Random tags tried for one master before giving up on placing it (each has a
#: one-in-masters chance; the slot map is consulted, not Redis).
_TRIES = 4096


class StreamIds:
    """New stream ids: random on one Redis; on a cluster, a tag per master."""

    def __init__(
        self, routes: Routes, keys: Keys, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._routes = routes
        self._keys = keys
        self._clock = clock
        self._tags: dict[str, tuple[str, float]] = {}  # master -> (tag, drawn at)
        self._turn = itertools.count()

    def new(self) -> str:
        if not self._routes.target.cluster:
            return new_stream_id()
        masters = self._routes.masters()
        if not masters:
            return new_stream_id()
        master = masters[next(self._turn) % len(masters)]
        return self._tag_of(master) + new_stream_id()

    def _tag_of(self, master: str) -> str:
        now = self._clock()
        kept = self._tags.get(master)
        if kept is not None and now - kept[1] < TAG_LIFETIME and self._holds(master, kept[0]):
            return kept[0]
        for _ in range(_TRIES):
            tag = secrets.token_urlsafe(3)[:TAG_CHARS]
            if self._holds(master, tag):
                self._tags[master] = (tag, now)
                return tag
        return secrets.token_urlsafe(3)[:TAG_CHARS]  # a slot map without this master

    def _holds(self, master: str, tag: str) -> bool:
        return self._routes.node_of(self._keys.stream(tag)) == master
