"""The Redis store's life cycle: every allowed move, and that anything else is refused."""

from __future__ import annotations

import pytest

from server.store.redis.state import InvalidTransition, State, Transition, next_state

S, T = State, Transition


@pytest.mark.parametrize(
    "state, transition, after",
    [
        (S.CONNECTING, T.CONNECTED, S.SERVING),
        (S.SERVING, T.LOST, S.RECOVERING),
        (S.RECOVERING, T.CONNECTED, S.SERVING),
        (S.SERVING, T.DRAIN, S.DRAINING),
        (S.DRAINING, T.LOST, S.DRAINING_OFFLINE),
        (S.DRAINING_OFFLINE, T.CONNECTED, S.DRAINING),
        (S.CONNECTING, T.DRAIN, S.DRAINING_OFFLINE),
        (S.RECOVERING, T.DRAIN, S.DRAINING_OFFLINE),
        (S.DRAINING, T.DRAIN, S.DRAINING),
        (S.CLOSED, T.DRAIN, S.CLOSED),
    ],
)
def test_allowed_moves(state: State, transition: Transition, after: State) -> None:
    assert next_state(state, transition) is after


@pytest.mark.parametrize("state", list(State))
def test_close_is_allowed_from_anywhere(state: State) -> None:
    assert next_state(state, T.CLOSE) is S.CLOSED


@pytest.mark.parametrize(
    "state, transition",
    [
        (S.SERVING, T.CONNECTED),  # a second connection would leak the first
        (S.DRAINING, T.CONNECTED),
        (S.CLOSED, T.CONNECTED),  # nothing reconnects a closed store
        (S.CONNECTING, T.LOST),  # only a store that served can lose Redis
        (S.RECOVERING, T.LOST),
        (S.CLOSED, T.LOST),
    ],
)
def test_other_moves_are_bugs(state: State, transition: Transition) -> None:
    with pytest.raises(InvalidTransition):
        next_state(state, transition)


def test_what_each_state_allows() -> None:
    assert {s for s in State if s.available} == {S.SERVING, S.DRAINING}
    assert {s for s in State if s.shutting_down} == {S.DRAINING, S.DRAINING_OFFLINE, S.CLOSED}
