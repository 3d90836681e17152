"""The names of everything the store keeps in Redis, under one prefix.

* ``{prefix}s:{{id}}`` a stream's log: a Redis Stream, entry ids ``{seq}-1``,
  field ``e`` = the event's JSON text;
* ``{prefix}m:{{id}}`` its meta hash: ``owner`` (a lease token), ``epoch`` (the
  owner's fence: bumped when the stream is declared dead), ``last`` (seq), ``end``;
* ``{prefix}c:{{id}}`` the (sharded, on a cluster) pub/sub channel its new events
  are published on;
* ``{prefix}r:{{id}}`` "read elsewhere": set by processes whose mirrors have readers;
* ``{prefix}o:{{token}}`` a process's lease (on a cluster, one per master:
  :meth:`Keys.leases`); ``{prefix}k:{{token}}`` its control channel;
* ``{prefix}d:{kind}:{{key}}`` a record (``server.store.redis.records``).

Every key and channel of one stream carries the stream id as its hash tag
(``{id}``), so on Redis Cluster they share one hash slot: a script may touch
them together, and the stream's channel lives on the node that holds its log.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys", "is_terminal_text"]


@dataclass(frozen=True)
class Keys:
    prefix: str

    def stream(self, stream_id: str) -> str:
        return f"{self.prefix}s:{{{stream_id}}}"

    def meta(self, stream_id: str) -> str:
        return f"{self.prefix}m:{{{stream_id}}}"

    def channel(self, stream_id: str) -> str:
        return f"{self.prefix}c:{{{stream_id}}}"

    def read(self, stream_id: str) -> str:
        return f"{self.prefix}r:{{{stream_id}}}"

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
        return f"{self.prefix}d:{kind}:{{{key}}}"

    def is_control(self, channel: str) -> bool:
        return channel.startswith(f"{self.prefix}k:")

    def stream_of_channel(self, channel: str) -> str:
        return channel[len(self.prefix) + 3 : -1]


def is_terminal_text(text: str) -> bool:
    # Events are written by events.dumps: compact, "type" first.
    return text.startswith('{"type":"done"') or text.startswith('{"type":"error"')
