"""RFC 3539 watchdog (via RFC 6733 §5.5): DWR after Tw of silence, SUSPECT, DOWN, recovery."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.diameter import base_rfc6733 as base
from protocols.diameter.events import WatchdogChanged
from protocols.diameter.peer import PeerConnection, Role
from protocols.diameter.peer_state import State, Watchdog

from .helpers import EIR, MME, Pair, config, eca, ecr, encode_message, messages, request_msg, types


def test_dwr_after_tw_of_silence_not_before() -> None:
    pair = Pair.make()
    assert pair.client.next_deadline() == 30.0
    assert pair.client.handle_timer(29.999) == []
    assert pair.client.data_to_send() == b""
    assert pair.client.handle_timer(30.0) == []
    (dwr,) = messages(pair.client.data_to_send())
    assert dwr.command == base.DWR.code and dwr.is_request
    assert dwr.get(base.ORIGIN_HOST) == MME.host


def test_jittered_tw_stays_within_bounds() -> None:
    for r in (0.0, 0.5, 0.999):
        conn = PeerConnection(config(MME, watchdog_jitter=2.0), Role.INITIATOR, 0.0, rng=lambda r=r: r)
        assert 28.0 <= conn._tw <= 32.0


def test_traffic_resets_the_watchdog() -> None:
    pair = Pair.make()
    pair.now = 20.0
    pair.server.send_request(ecr(), 20.0)  # server -> client traffic at t=20
    pair.pump()
    assert pair.client.next_deadline() == 50.0
    assert pair.client.handle_timer(30.0) == []
    assert pair.client.data_to_send() == b""


def test_dwr_is_answered_with_2001() -> None:
    pair = Pair.make()
    pair.advance(30.0)
    dwa_bytes = b"".join(pair.to_client)
    answers = [m for m in messages(dwa_bytes) if m.command == base.DWR.code]
    assert len(answers) == 1 and not answers[0].is_request
    assert answers[0].get(base.RESULT_CODE) == 2001
    assert answers[0].get(base.ORIGIN_HOST) == EIR.host
    assert pair.client.watchdog is Watchdog.OKAY


def test_no_dwa_suspect_then_down() -> None:
    client = Pair.make().client  # the server never sees anything again
    assert client.handle_timer(30.0) == []  # DWR sent
    assert client.data_to_send() != b""
    assert client.next_deadline() == 60.0
    assert client.handle_timer(59.0) == []
    events = client.handle_timer(60.0)
    assert events == [WatchdogChanged("suspect")]
    assert client.watchdog is Watchdog.SUSPECT and client.state is State.OPEN
    assert client.data_to_send() == b""  # no second DWR while one is pending
    events = client.handle_timer(90.0)
    assert types(events) == ["ConnectionClosed"]
    assert client.state is State.CLOSED
    assert client.next_deadline() is None


def test_dwa_brings_suspect_back_to_okay() -> None:
    pair = Pair.make()
    pair.client.handle_timer(30.0)
    held = pair.client.data_to_send()  # the DWR, held back
    assert pair.client.handle_timer(60.0) == [WatchdogChanged("suspect")]
    pair.now = 61.0
    pair.server_events += pair.server.receive_data(held, 61.0)
    pair.pump()
    assert pair.client_events == [WatchdogChanged("okay")]
    assert pair.client.watchdog is Watchdog.OKAY
    assert pair.client.next_deadline() == 91.0


def test_request_traffic_also_ends_suspect() -> None:
    pair = Pair.make()
    pair.client.handle_timer(30.0)
    pair.client.data_to_send()
    pair.client.handle_timer(60.0)
    req = ecr()
    hbh = pair.client.send_request(req, 61.0)
    pair.pump()
    (received,) = pair.server_events
    pair.server.send_answer(eca(received.message), received.message)  # type: ignore[union-attr]
    pair.pump()
    assert WatchdogChanged("okay") in pair.client_events
    assert hbh not in pair.client.pending_requests()


def test_dwr_is_answered_while_closing() -> None:
    pair = Pair.make()
    pair.server.disconnect(1.0)
    pair.server.data_to_send()  # DPR lost
    events = pair.server.receive_data(encode_message(request_msg(base.DWR, MME)), 2.0)
    assert events == []
    (dwa,) = messages(pair.server.data_to_send())
    assert dwa.get(base.RESULT_CODE) == 2001


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["wait", "poke", "req", "answer", "dwr-lost"]),
                                st.floats(0.0, 40.0, allow_nan=False)), max_size=25))
def test_handle_timer_before_next_deadline_does_nothing(steps: list[tuple[str, float]]) -> None:
    """next_deadline() is when something happens: any earlier handle_timer() is a no-op."""
    pair = Pair.make(watchdog_jitter=2.0)
    pending = []
    for action, dt in steps:
        for conn in (pair.client, pair.server):
            d = conn.next_deadline()
            if d is not None and d > pair.now:
                probe = pair.now + min(dt, d - pair.now) * 0.999
                if probe < d:
                    before = conn.state, conn.watchdog, conn.in_flight
                    assert conn.handle_timer(probe) == []
                    assert conn.data_to_send() == b""
                    assert (conn.state, conn.watchdog, conn.in_flight) == before
        if action == "wait":
            pair.advance(pair.now + dt)
        elif action == "poke" and pair.client.is_open:
            pair.client.send_request(ecr(), pair.now, timeout=dt + 1)
            pair.pump()
        elif action == "req" and pair.server.is_open:
            pair.server.send_request(ecr(origin=EIR), pair.now, timeout=dt + 1)
        elif action == "answer":
            pending += [e.message for e in pair.server_events if type(e).__name__ == "RequestReceived"]
            pair.server_events.clear()
            if pending and pair.server.state in (State.OPEN, State.CLOSING):
                m = pending.pop()
                pair.server.send_answer(eca(m), m)
                pair.pump()
        elif action == "dwr-lost":
            pair.client.data_to_send()
        # At the deadline itself, something happens (or the deadline moved).
        for conn in (pair.client, pair.server):
            d = conn.next_deadline()
            if d is not None and d <= pair.now:
                out = conn.handle_timer(pair.now)
                assert out or conn.data_to_send() or conn.next_deadline() != d or conn.state is State.CLOSED
        pair.pump()
