"""The names of everything the store keeps in Redis, under one prefix.

* ``{prefix}s:{{tag}}{rest}`` a stream's log (``tag`` + ``rest`` = its id, see
  below): a Redis Stream, entry ids ``{seq}-1``, field ``e`` = the event's JSON text;
* ``{prefix}m:{{tag}}{rest}`` its meta hash: ``owner`` (a lease token), ``epoch`` (the
  owner's fence: bumped when the stream is declared dead), ``last`` (seq), ``end``;
* ``{prefix}c:{{tag}}{rest}`` the (sharded, on a cluster) pub/sub channel its new
  events are published on;
* ``{prefix}r:{{tag}}{rest}`` "read elsewhere": set by processes whose mirrors have readers;
* ``{prefix}o:{{token}}`` a process's lease (on a cluster, one per master:
  :meth:`Keys.leases`); ``{prefix}k:{{token}}`` its control channel;
* ``{prefix}d:{kind}:{{tag}}{rest}`` a record (``server.store.redis.records``).

Every key and channel of one stream carries the first :data:`TAG_CHARS`
characters of the stream id as its hash tag (``{tag}``), so on Redis Cluster
they share one hash slot: a script may touch them together, and the stream's
channel lives on the node that holds its log. The tag is part of the id, so
any process finds a stream's keys from its id alone; a process on a cluster
chooses the tags of the ids it makes (:mod:`.ids`) so that its streams on one
master share a few slots, and one script call writes them all.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys", "TAG_CHARS", "is_terminal_text", "tagged", "untagged"]

#: How many leading characters of a stream id are its hash tag (64**4 tags: ids
#: made elsewhere still spread over all 16,384 slots).
TAG_CHARS = 4


def tagged(stream_id: str) -> str:
    """``abcdefgh`` -> ``{abcd}efgh``: the id, its hash tag in braces."""
    return f"{{{stream_id[:TAG_CHARS]}}}{stream_id[TAG_CHARS:]}"


def untagged(text: str) -> str:
    """The inverse of :func:`tagged`: ``{abcd}efgh`` -> ``abcdefgh`` (``{abc}`` -> ``abc``)."""
    body = text[1:]  # after "{": "tag}rest", or "id}" for an id shorter than a tag
    if len(body) > TAG_CHARS + 1 and body[TAG_CHARS] == "}":
        return body[:TAG_CHARS] + body[TAG_CHARS + 1 :]
    return body[:-1]


@dataclass(frozen=True)
class Keys:
    prefix: str

    def stream(self, stream_id: str) -> str:
        return f"{self.prefix}s:{tagged(stream_id)}"

    def meta(self, stream_id: str) -> str:
        return f"{self.prefix}m:{tagged(stream_id)}"

    def channel(self, stream_id: str) -> str:
        return f"{self.prefix}c:{tagged(stream_id)}"

    def read(self, stream_id: str) -> str:
        return f"{self.prefix}r:{tagged(stream_id)}"

    def lease(self, token: str) -> str:
        return f"{self.prefix}o:{{{token}}}"

    def leases(self, owner: str) -> list[str]:
        """The lease keys of a process: one, or on a cluster one per master
        (the owner token ``HEX.a.b.c`` names them: ``o:{HEX.a}``, ...), so that
        one master failing over cannot take a live process's lease with it."""
        head, *tails = owner.split(".")
        if not tails:
            return [self.lease(owner)]
        return [self.lease(f"{head}.{tail}") for tail in tails]

    def control(self, token: str) -> str:
        return f"{self.prefix}k:{{{token}}}"

    def record(self, kind: str, key: str) -> str:
        return f"{self.prefix}d:{kind}:{tagged(key)}"  # a stream's records: in its slot

    def is_control(self, channel: str) -> bool:
        return channel.startswith(f"{self.prefix}k:")

    def stream_of_channel(self, channel: str) -> str:
        return untagged(channel[len(self.prefix) + 2 :])  # after "c:"

    def of_record(self, kind: str, key: str) -> str:
        """The key a record's Redis key names (the inverse of :meth:`record`)."""
        return untagged(key[len(self.prefix) + len(kind) + 3 :])  # after "d:KIND:"


def is_terminal_text(text: str) -> bool:
    # Events are written by events.dumps: compact, "type" first.
    return text.startswith('{"type":"done"') or text.startswith('{"type":"error"')
