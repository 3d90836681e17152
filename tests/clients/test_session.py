"""The clients' session module on its own, without a server: accepting events,
dedupe by ``seq``, the stream and cancel states, and the reconnect decision."""

from __future__ import annotations

import pytest

from clients.errors import (
    ConnectionLost,
    Dropped,
    HTTPStatusError,
    MalformedData,
    ResumeFailed,
    ServerUnreachable,
    StreamError,
    Timeout,
    WrongContentType,
)
from clients.session import (
    CancelState,
    InvalidTransition,
    ReconnectPolicy,
    Reconnects,
    Session,
    StreamState,
    Verdict,
    gave_up,
    reconnecting_off,
)

STREAM = "s1"


def start() -> dict:
    return {"type": "start", "stream": STREAM, "seq": 0, "model": "m"}


def delta(seq: int, content: str) -> dict:
    return {"type": "delta", "stream": STREAM, "seq": seq, "content": content}


def done(seq: int) -> dict:
    return {"type": "done", "stream": STREAM, "seq": seq, "finish_reason": "stop"}


def opened() -> Session:
    session = Session()
    session.open()
    return session


# --- accepting events, dedupe by seq -------------------------------------------------


def test_events_move_the_stream_from_new_to_ended():
    session = Session()
    assert session.state is StreamState.NEW and not session.resumable
    session.open()
    assert session.state is StreamState.OPENING and not session.resumable
    assert session.accept(start())
    assert session.state is StreamState.STREAMING and session.resumable
    assert (session.stream_id, session.model) == (STREAM, "m")
    assert session.accept(delta(1, "a")) and session.accept(delta(2, "b"))
    assert session.accept(done(3))
    assert session.state is StreamState.ENDED and session.ended
    assert (session.finish_reason, "".join(session.parts), session.last_seq) == ("stop", "ab", 3)
    assert (session.stats.events, session.stats.tokens) == (4, 2)


def test_a_resumed_connection_repeats_events_and_each_counts_once():
    session = opened()
    for event in (start(), delta(1, "a"), delta(2, "b")):
        assert session.accept(event)
    # what a resume may bring again: the events up to last_seq, then new ones
    replay = [start(), delta(1, "a"), delta(2, "b"), delta(3, "c")]
    assert [session.accept(event) for event in replay] == [False, False, False, True]
    assert "".join(session.parts) == "abc" and session.last_seq == 3
    assert (session.stats.events, session.stats.tokens) == (4, 3)


def test_the_resume_point_is_the_last_event_accepted():
    session = opened()
    assert session.last_seq == -1 and session.stream_id is None  # nothing to resume yet
    session.accept(start())
    session.accept(delta(1, "a"))
    session.accept(delta(1, "a"))  # a duplicate does not move it
    assert (session.stream_id, session.last_seq) == (STREAM, 1)
    with pytest.raises(MalformedData, match="events 2..3 are missing"):
        session.accept(delta(4, "d"))  # a gap is not skipped over
    assert session.last_seq == 1


@pytest.mark.parametrize(
    "event, message",
    [
        ({"type": "delta", "seq": 0, "content": "x"}, "delta event before start"),
        ({"type": "start", "seq": 0}, "start event without a stream id"),
        ({"type": "nonsense", "stream": STREAM, "seq": 0}, "not a twinstream event"),
        ({"type": "start", "stream": STREAM, "seq": True}, "not a twinstream event"),
    ],
)
def test_events_that_break_the_contract(event, message):
    with pytest.raises(MalformedData, match=message):
        opened().accept(event)


def test_an_event_of_another_stream_is_refused():
    session = opened()
    session.accept(start())
    with pytest.raises(MalformedData, match="another stream"):
        session.accept({**delta(1, "x"), "stream": "other"})


def test_error_events_end_the_stream():
    session = opened()
    session.accept(start())
    error = {"type": "error", "stream": STREAM, "seq": 1, "code": "upstream_error"}
    with pytest.raises(StreamError) as caught:
        session.accept(error)
    assert caught.value.code == "upstream_error" and session.ended
    about_a_message = opened()
    with pytest.raises(StreamError):
        about_a_message.accept({"type": "error", "code": "bad_request"})  # no seq
    assert about_a_message.ended


def test_a_websocket_binds_the_id_before_the_start_event_is_accepted():
    session = opened()
    session.bind(STREAM)  # routed by its ref; the start event still queued
    assert session.state is StreamState.STREAMING and session.resumable
    assert session.accept(start()) and session.state is StreamState.STREAMING


def test_transitions_that_cannot_happen_are_refused_and_ended_is_terminal():
    with pytest.raises(InvalidTransition, match="cannot bind a stream that is new"):
        Session().bind(STREAM)
    session = opened()
    with pytest.raises(InvalidTransition, match="cannot open a stream that is opening"):
        session.open()
    session.end()
    session.open()  # ended: stays ended
    assert session.state is StreamState.ENDED


# --- cancelling --------------------------------------------------------------------------


def test_a_cancel_is_claimed_once_when_the_stream_has_its_id():
    session = opened()
    assert not session.cancelled and not session.claim_cancel()  # not asked
    session.ask_cancel()
    assert session.cancelled and session.cancel is CancelState.ASKED
    assert not session.claim_cancel()  # no id yet: it waits for the start event
    session.accept(start())
    assert session.claim_cancel() and session.cancel is CancelState.SENT
    assert not session.claim_cancel()  # once only
    session.ask_cancel()
    assert session.cancel is CancelState.SENT


def test_an_undelivered_cancel_abandons_the_stream():
    session = opened()
    session.accept(start())
    session.ask_cancel()
    assert session.claim_cancel() and not session.abandoned
    session.cancel_undelivered()
    assert session.abandoned and session.cancelled and not session.ended


def test_no_cancel_is_due_once_the_stream_ended():
    session = opened()
    session.accept(start())
    session.accept(done(1))
    session.ask_cancel()
    assert session.cancelled and not session.claim_cancel()


# --- the reconnect decision --------------------------------------------------------------


def no_wait(max_attempts: int = 3) -> Reconnects:
    return Reconnects(ReconnectPolicy(max_attempts=max_attempts, initial_delay=0.1, jitter=0))


def test_nothing_to_resume_before_the_stream_has_an_id():
    reconnects = no_wait()
    decision = reconnects.decide(Dropped("cut"), resumable=False)
    assert decision.verdict is Verdict.NOTHING_TO_RESUME
    assert reconnects.failures == 0  # not an attempt


def test_gives_up_after_max_attempts_with_backoff_in_between():
    reconnects = no_wait(3)
    decisions = [reconnects.decide(Dropped("cut"), resumable=True) for _ in range(4)]
    verdicts = [d.verdict for d in decisions]
    assert verdicts == [Verdict.RETRY] * 3 + [Verdict.GAVE_UP]
    assert [d.attempts for d in decisions] == [1, 2, 3, 3]
    assert [d.delay for d in decisions[:3]] == [0.1, 0.2, 0.4]
    failure = gave_up(Dropped("cut"), decisions[-1].attempts)
    assert isinstance(failure, ResumeFailed) and failure.attempts == 3
    assert str(failure) == "gave up resuming after 3 attempts: cut"
    assert isinstance(failure.__cause__, Dropped)


def test_the_count_starts_again_once_a_connection_delivers():
    reconnects = no_wait(2)
    for _ in range(3):  # more drops than attempts, each followed by an event
        assert reconnects.decide(Timeout("t", "read", 1), resumable=True).attempts == 1
        reconnects.delivered()
    assert reconnects.failures == 0


def test_the_server_retry_hint_is_the_backoff_base():
    reconnects = no_wait()
    assert reconnects.decide(Dropped("cut"), resumable=True, server_retry=2.0).delay == 2.0
    assert reconnects.decide(Dropped("cut"), resumable=True, server_retry=2.0).delay == 4.0


@pytest.mark.parametrize(
    "failure",
    [
        Dropped("cut"),
        Timeout("t", "read", 1),
        ServerUnreachable("down"),
        HTTPStatusError(503, None, ""),
    ],
    ids=["dropped", "timeout", "unreachable", "503"],
)
def test_what_a_new_connection_may_cure_is_retried(failure):
    assert no_wait().decide(failure, resumable=True).verdict is Verdict.RETRY


@pytest.mark.parametrize(
    "failure",
    [HTTPStatusError(404, "stream_not_found", "gone"), WrongContentType("text/html")],
    ids=["404", "not-an-event-stream"],
)
def test_a_refusal_is_not_retried(failure):
    reconnects = no_wait()
    reconnects.decide(Dropped("cut"), resumable=True)  # attempt 1 ...
    decision = reconnects.decide(failure, resumable=True)  # ... refused
    assert (decision.verdict, decision.attempts) == (Verdict.REFUSED, 1)


def test_reconnecting_off():
    reconnects = no_wait(0)
    assert reconnects.decide(Dropped("cut"), resumable=True).verdict is Verdict.RECONNECTING_OFF
    lost = reconnecting_off(Dropped("cut"))
    assert isinstance(lost, ConnectionLost) and str(lost) == "cut; reconnecting is off"
    assert lost.__cause__ is None and lost.__suppress_context__
    timeout = Timeout("t", "read", 1)
    assert reconnecting_off(timeout) is timeout  # not a drop: stands as it is
