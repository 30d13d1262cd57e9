"""Our requests and the peer's answers: Hop-by-Hop matching, timeouts, limits, End-to-End ids (RFC 6733 §3)."""

from __future__ import annotations

import itertools

import pytest

from protocols.diameter import base_rfc6733 as base
from protocols.diameter.errors import StateError
from protocols.diameter.events import AnswerDiscarded, AnswerReceived, RequestReceived, RequestTimedOut
from protocols.diameter.peer import PeerConnection, Role

from .helpers import EIR, MME, Pair, config, eca, ecr, encode_message, messages, types


def test_answers_match_by_hop_by_hop_in_any_order() -> None:
    pair = Pair.make()
    hbhs = [pair.client.send_request(ecr(f"4901542032375{i}"), 1.0) for i in range(5)]
    assert len(set(hbhs)) == 5 and pair.client.in_flight == 5
    pair.pump()
    reqs = [e.message for e in pair.server_events if isinstance(e, RequestReceived)]
    assert [r.hop_by_hop for r in reqs] == hbhs
    for r in reversed(reqs):
        pair.server.send_answer(eca(r), r)
    pair.pump()
    answered = [e for e in pair.client_events if isinstance(e, AnswerReceived)]
    assert [a.message.hop_by_hop for a in answered] == hbhs[::-1]
    assert all(a.request_sent_at == 1.0 for a in answered)
    assert pair.client.in_flight == 0
    assert pair.server.incoming_pending == 0


def test_unknown_hop_by_hop_answer_is_discarded() -> None:
    pair = Pair.make()
    req = ecr()
    req.hop_by_hop = 0xDEAD
    events = pair.client.receive_data(encode_message(eca(req)), 1.0)
    assert types(events) == ["AnswerDiscarded"]
    assert isinstance(events[0], AnswerDiscarded) and events[0].message.hop_by_hop == 0xDEAD


def test_answer_after_timeout_is_discarded() -> None:
    pair = Pair.make()
    hbh = pair.client.send_request(ecr(), 0.0, timeout=2.0)
    pair.pump()
    assert types(pair.client.handle_timer(2.0)) == ["RequestTimedOut"]
    (req,) = (e.message for e in pair.server_events if isinstance(e, RequestReceived))
    pair.server.send_answer(eca(req), req)
    pair.pump()
    assert types(pair.client_events) == ["AnswerDiscarded"]
    assert req.hop_by_hop == hbh


def test_request_times_out_at_its_deadline_not_before() -> None:
    pair = Pair.make()
    req = ecr()
    hbh = pair.client.send_request(req, 5.0, timeout=3.0)
    assert pair.client.next_deadline() == 8.0
    assert pair.client.handle_timer(7.999) == []
    events = pair.client.handle_timer(8.0)
    assert events == [RequestTimedOut(hbh, req.end_to_end, req.command)]
    assert pair.client.in_flight == 0
    assert pair.client.next_deadline() == 30.0


def test_default_request_timeout_and_answered_request_leaves_no_deadline() -> None:
    pair = Pair.make(request_timeout=4.0)
    pair.client.send_request(ecr(), 0.0)
    assert pair.client.next_deadline() == 4.0
    pair.pump()
    (ev,) = pair.server_events
    assert isinstance(ev, RequestReceived)
    pair.server.send_answer(eca(ev.message), ev.message)
    pair.pump()
    assert pair.client.next_deadline() == 30.0  # the stale timeout is not a deadline any more
    assert pair.client.handle_timer(4.0) == []


def test_max_in_flight_is_enforced() -> None:
    pair = Pair.make(max_in_flight=3)
    for _ in range(3):
        pair.client.send_request(ecr(), 0.0)
    assert not pair.client.can_send
    with pytest.raises(StateError):
        pair.client.send_request(ecr(), 0.0)
    pair.client.handle_timer(100.0)  # all time out: room again
    assert pair.client.can_send
    pair.client.send_request(ecr(), 100.0)


@pytest.mark.parametrize("role", [Role.INITIATOR, Role.RESPONDER])
def test_send_request_when_not_open_raises(role: Role) -> None:
    conn = PeerConnection(config(MME), role, 0.0)
    with pytest.raises(StateError):
        conn.send_request(ecr(), 0.0)
    if role is Role.INITIATOR:
        conn.start(0.0)
        with pytest.raises(StateError):
            conn.send_request(ecr(), 0.0)
    conn.connection_lost(1.0)
    with pytest.raises(StateError):
        conn.send_request(ecr(), 1.0)
    assert conn.data_to_send() == b"" or role is Role.INITIATOR


def test_end_to_end_high_bits_come_from_the_seed() -> None:
    conn = PeerConnection(config(MME), Role.INITIATOR, 0.0, rng=lambda: 0.999999, e2e_seed=0xABCDE)
    conn.start(0.0)
    (cer_msg,) = messages(conn.data_to_send())
    assert cer_msg.end_to_end >> 20 == 0xCDE  # the low 12 bits of the seed
    ids = [cer_msg.end_to_end]
    # The low 20 bits wrap without touching the high 12.
    for _ in range(5):
        ids.append(conn._next_e2e())
    assert all(i >> 20 == 0xCDE for i in ids)
    assert len(set(ids)) == len(ids)


def test_end_to_end_seed_defaults_to_now() -> None:
    conn = PeerConnection(config(MME), Role.INITIATOR, float(0x1234567))
    conn.start(float(0x1234567))
    (cer_msg,) = messages(conn.data_to_send())
    assert cer_msg.end_to_end >> 20 == 0x567


def test_caller_end_to_end_is_kept() -> None:
    pair = Pair.make()
    req = ecr(e2e=0x42)
    pair.client.send_request(req, 0.0)
    pair.pump()
    (ev,) = pair.server_events
    assert isinstance(ev, RequestReceived) and ev.message.end_to_end == 0x42


def test_hop_by_hop_ids_are_unique_and_increasing() -> None:
    pair = Pair.make()
    hbhs = [pair.client.send_request(ecr(), 0.0) for _ in range(100)]
    assert len(set(hbhs)) == 100
    assert all((b - a) & 0xFFFFFFFF == 1 for a, b in itertools.pairwise(hbhs))


def test_invalid_request_is_answered_by_the_connection() -> None:
    pair = Pair.make()
    bad = ecr()
    bad.avps = [a for a in bad.avps if a.code != 1401]  # no Terminal-Information
    pair.client.send_request(bad, 0.0)
    pair.pump()
    assert types(pair.server_events) == ["RequestRejected"]
    (ans,) = (e for e in pair.client_events if isinstance(e, AnswerReceived))
    assert ans.message.get(base.RESULT_CODE) == 5005
    assert EIR.host


def test_send_answer_when_not_open_raises() -> None:
    conn = PeerConnection(config(EIR), Role.RESPONDER, 0.0)
    with pytest.raises(StateError):
        conn.send_answer(b"\x01\x00\x00\x14" + bytes(16), ecr())
