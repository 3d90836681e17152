"""The store's life cycle: one state, changed only by named transitions.

Two things vary over a store's life: whether Redis answers, and whether the
process is shutting down. Their combinations are the states; the table below
is every move allowed, anything else is a bug (:class:`InvalidTransition`)::

    CONNECTING --connected--> SERVING --lost--> RECOVERING --connected--> SERVING
        |                        |                   |
      drain                    drain               drain
        v                        v                   v
    DRAINING_OFFLINE <--lost-- DRAINING        DRAINING_OFFLINE
        '------connected------>'

    any --close--> CLOSED

What each state means for callers: ``create`` works only in SERVING;
``open`` of a stream not held here needs Redis (SERVING or DRAINING); appends
are written only while Redis answers and are shown at once otherwise.
"""

from __future__ import annotations

import enum

__all__ = ["State", "Transition", "InvalidTransition", "next_state"]


class State(enum.Enum):
    #: Not connected yet: created, or the first connection attempts failed.
    CONNECTING = "connecting"
    #: Redis answers: streams are created, written, mirrored.
    SERVING = "serving"
    #: Redis was lost: live streams here ended with store_unavailable; reconnecting.
    RECOVERING = "recovering"
    #: Shutting down: new streams refused; generations here go on, written to Redis.
    DRAINING = "draining"
    #: Shutting down with Redis lost: reconnecting only to write what is pending.
    DRAINING_OFFLINE = "draining_offline"
    #: Closed: nothing is written or read any more.
    CLOSED = "closed"

    @property
    def available(self) -> bool:
        """Redis answers: appends are written, opens may load from Redis."""
        return self in (State.SERVING, State.DRAINING)

    @property
    def shutting_down(self) -> bool:
        return self in (State.DRAINING, State.DRAINING_OFFLINE, State.CLOSED)


class Transition(enum.Enum):
    CONNECTED = "connected"  # a connection, the lease and the control channel are up
    LOST = "lost"  # an outage: a call failed as unreachable
    DRAIN = "drain"  # shutdown begins
    CLOSE = "close"


class InvalidTransition(RuntimeError):
    pass


_S, _T = State, Transition
_TABLE: dict[tuple[State, Transition], State] = {
    (_S.CONNECTING, _T.CONNECTED): _S.SERVING,
    (_S.RECOVERING, _T.CONNECTED): _S.SERVING,
    (_S.DRAINING_OFFLINE, _T.CONNECTED): _S.DRAINING,
    (_S.SERVING, _T.LOST): _S.RECOVERING,
    (_S.DRAINING, _T.LOST): _S.DRAINING_OFFLINE,
    (_S.SERVING, _T.DRAIN): _S.DRAINING,
    (_S.DRAINING, _T.DRAIN): _S.DRAINING,
    (_S.CONNECTING, _T.DRAIN): _S.DRAINING_OFFLINE,
    (_S.RECOVERING, _T.DRAIN): _S.DRAINING_OFFLINE,
    (_S.DRAINING_OFFLINE, _T.DRAIN): _S.DRAINING_OFFLINE,
    (_S.CLOSED, _T.DRAIN): _S.CLOSED,
    **{(state, _T.CLOSE): _S.CLOSED for state in State},
}


def next_state(state: State, transition: Transition) -> State:
    try:
        return _TABLE[state, transition]
    except KeyError:
        raise InvalidTransition(f"{transition.value} is not allowed in {state.name}") from None
