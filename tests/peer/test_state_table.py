"""The transition table (RFC 6733 §5.6) is total except the deliberately missing local-only calls."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.diameter.errors import StateError
from protocols.diameter.peer import PeerConnection, Role
from protocols.diameter.peer_state import TRANSITIONS, WATCHDOG, Input, State, Watchdog, WatchdogInput

from .helpers import MME, Pair, config, eca, ecr

LOCAL_ONLY_MISSING = {
    Input.START: set(State) - {State.IDLE},
    Input.SEND_REQUEST: set(State) - {State.OPEN},
    Input.SEND_ANSWER: set(State) - {State.OPEN, State.CLOSING},
}


def expected_missing(state: State, inp: Input) -> bool:
    return state in LOCAL_ONLY_MISSING.get(inp, set())


@settings(max_examples=200, deadline=None)
@given(state=st.sampled_from(State), inp=st.sampled_from(Input))
def test_table_is_total_except_local_only(state: State, inp: Input) -> None:
    assert ((state, inp) in TRANSITIONS) is not expected_missing(state, inp)


def test_table_exhaustively() -> None:
    missing = {(s, i) for s in State for i in Input if (s, i) not in TRANSITIONS}
    assert missing == {(s, i) for i, states in LOCAL_ONLY_MISSING.items() for s in states}
    assert all(TRANSITIONS[(State.CLOSED, i)] is State.CLOSED for i in Input if (State.CLOSED, i) in TRANSITIONS)
    for s in State:
        assert TRANSITIONS[(s, Input.TRANSPORT_CLOSED)] is State.CLOSED
        assert TRANSITIONS[(s, Input.RCV_GARBAGE)] is State.CLOSED


def test_watchdog_table_is_total() -> None:
    assert set(WATCHDOG) == {(w, i) for w in Watchdog for i in WatchdogInput}


def in_state(state: State) -> PeerConnection:
    """A connection brought to ``state`` through the public API only."""
    if state is State.IDLE:
        return PeerConnection(config(MME), Role.INITIATOR, 0.0)
    if state is State.WAIT_CER:
        return PeerConnection(config(MME), Role.RESPONDER, 0.0)
    if state is State.WAIT_CEA:
        conn = PeerConnection(config(MME), Role.INITIATOR, 0.0)
        conn.start(0.0)
        return conn
    pair = Pair.make()
    if state is State.CLOSING:
        pair.client.disconnect(1.0)
    elif state is State.CLOSED:
        pair.client.connection_lost(1.0)
    assert pair.client.state is state
    return pair.client


@settings(max_examples=100, deadline=None)
@given(state=st.sampled_from(State), inp=st.sampled_from(sorted(LOCAL_ONLY_MISSING, key=lambda i: i.value)))
def test_missing_local_calls_raise_state_error(state: State, inp: Input) -> None:
    conn = in_state(state)
    conn.data_to_send()
    req = ecr()
    call = {
        Input.START: lambda: conn.start(2.0),
        Input.SEND_REQUEST: lambda: conn.send_request(ecr(), 2.0),
        Input.SEND_ANSWER: lambda: conn.send_answer(eca(req), req),
    }[inp]
    if expected_missing(state, inp):
        with pytest.raises(StateError):
            call()
        assert conn.state is state  # a refused call changes nothing
        assert conn.data_to_send() == b""
    else:
        call()
        assert conn.data_to_send() != b""
