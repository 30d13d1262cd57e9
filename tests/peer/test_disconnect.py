"""DPR/DPA (RFC 6733 §5.4): both directions, Disconnect-Cause, draining while CLOSING, the DPA timeout."""

from __future__ import annotations

import pytest

from protocols.diameter import base_rfc6733 as base
from protocols.diameter.errors import StateError
from protocols.diameter.events import AnswerReceived, ConnectionClosed, DisconnectRequested, RequestReceived
from protocols.diameter.peer_state import State

from .helpers import Pair, eca, ecr, messages, types

CAUSES = list(base.DisconnectCause)


@pytest.mark.parametrize("cause", CAUSES)
@pytest.mark.parametrize("direction", ["client", "server"])
def test_dpr_dpa_both_directions(direction: str, cause: base.DisconnectCause) -> None:
    pair = Pair.make()
    sender, receiver = (pair.client, pair.server) if direction == "client" else (pair.server, pair.client)
    assert sender.disconnect(1.0, cause) == []
    assert sender.state is State.CLOSING
    dpr_bytes = sender.data_to_send()
    (dpr,) = messages(dpr_bytes)
    assert dpr.command == base.DPR.code and dpr.is_request
    assert dpr.get(base.DISCONNECT_CAUSE) == int(cause)
    events = receiver.receive_data(dpr_bytes, 1.5)
    assert events == [DisconnectRequested(int(cause)), ConnectionClosed("peer sent DPR")]
    assert receiver.state is State.CLOSED
    dpa_bytes = receiver.data_to_send()
    (dpa,) = messages(dpa_bytes)
    assert dpa.hop_by_hop == dpr.hop_by_hop and dpa.get(base.RESULT_CODE) == 2001
    assert types(sender.receive_data(dpa_bytes, 2.0)) == ["ConnectionClosed"]
    assert sender.state is State.CLOSED
    assert sender.next_deadline() is None and receiver.next_deadline() is None


def test_in_flight_answers_are_still_sent_while_closing() -> None:
    pair = Pair.make()
    hbh = pair.client.send_request(ecr(), 0.0)
    pair.pump()
    (req,) = (e.message for e in pair.server_events if isinstance(e, RequestReceived))
    pair.client.disconnect(1.0)  # client says goodbye while its request is still being processed
    dpr = pair.client.data_to_send()
    assert pair.client.state is State.CLOSING
    with pytest.raises(StateError):
        pair.client.send_request(ecr(), 1.0)
    # The server answers first, then sees the DPR.
    pair.server.send_answer(eca(req), req)
    ans = pair.server.data_to_send()
    events = pair.client.receive_data(ans, 1.1)
    assert [type(e) for e in events] == [AnswerReceived]
    assert events[0].message.hop_by_hop == hbh  # type: ignore[union-attr]
    pair.server.receive_data(dpr, 1.2)
    assert types(pair.client.receive_data(pair.server.data_to_send(), 1.3)) == ["ConnectionClosed"]


def test_closing_side_can_still_answer_requests() -> None:
    pair = Pair.make()
    pair.client.send_request(ecr(), 0.0)
    pair.pump()
    (req,) = (e.message for e in pair.server_events if isinstance(e, RequestReceived))
    pair.server.disconnect(1.0, base.DisconnectCause.BUSY)
    assert pair.server.state is State.CLOSING
    pair.server.send_answer(eca(req), req)  # allowed in CLOSING
    out = messages(pair.server.data_to_send())
    assert [m.command for m in out] == [base.DPR.code, 324]


def test_requests_arriving_while_closing_reach_the_app() -> None:
    pair = Pair.make()
    pair.server.disconnect(1.0)
    pair.server.data_to_send()  # the DPR is in flight
    pair.client.send_request(ecr(), 1.0)
    events = pair.server.receive_data(pair.client.data_to_send(), 1.1)
    assert types(events) == ["RequestReceived"]


def test_dpa_timeout_closes() -> None:
    pair = Pair.make(disconnect_timeout=2.0)
    pair.client.disconnect(10.0)
    pair.client.data_to_send()  # DPR lost
    assert pair.client.next_deadline() == 12.0
    assert pair.client.handle_timer(11.9) == []
    assert types(pair.client.handle_timer(12.0)) == ["ConnectionClosed"]
    assert pair.client.state is State.CLOSED


def test_dpr_crossing_dpr() -> None:
    pair = Pair.make()
    pair.client.disconnect(1.0)
    pair.server.disconnect(1.0)
    pair.pump()
    assert pair.client.state is State.CLOSED and pair.server.state is State.CLOSED
    assert "ConnectionClosed" in types(pair.client_events)
    assert "ConnectionClosed" in types(pair.server_events)


def test_disconnect_is_idempotent() -> None:
    pair = Pair.make()
    assert pair.client.disconnect(1.0) == []
    assert pair.client.disconnect(1.0) == []
    assert len(messages(pair.client.data_to_send())) == 1  # one DPR
    pair.client.connection_lost(2.0)
    assert pair.client.disconnect(3.0) == []  # CLOSED is final: no second ConnectionClosed
    assert pair.client.connection_lost(3.0) == []


def test_disconnect_before_open_just_closes() -> None:
    pair = Pair.make(open=False)
    assert types(pair.server.disconnect(0.0)) == ["ConnectionClosed"]
    assert pair.server.data_to_send() == b""
