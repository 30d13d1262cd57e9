"""Capabilities exchange (RFC 6733 §5.3, §5.6.1): CER/CEA in both roles, the failures, the timeouts."""

from __future__ import annotations

import pytest

from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import common_applications
from protocols.diameter.events import CapabilitiesRejected, ConnectionClosed, ConnectionOpened
from protocols.diameter.message import FLAG_ERROR
from protocols.diameter.peer import PeerConnection, Role
from protocols.diameter.peer_state import State

from .helpers import DICT, EIR, MME, Pair, caps, cer, config, ecr, encode_message, messages, request_msg, types

RELAY = base.RELAY_APPLICATION


def responder(**kw: object) -> PeerConnection:
    return PeerConnection(config(EIR, **kw), Role.RESPONDER, 0.0)  # type: ignore[arg-type]


def test_success_both_roles() -> None:
    pair = Pair.make(open=False)
    assert pair.client.state is State.IDLE and pair.server.state is State.WAIT_CER
    pair.client.start(0.0)
    assert pair.client.state is State.WAIT_CEA
    pair.pump()
    assert types(pair.client_events) == ["ConnectionOpened"]
    assert types(pair.server_events) == ["ConnectionOpened"]
    assert pair.client.peer is not None and pair.client.peer.host == EIR.host
    assert pair.server.peer is not None and pair.server.peer.host == MME.host
    assert pair.server.peer.applications == {s13.APPLICATION_ID}
    (sent_cer,) = messages(pair.to_server[0])
    assert sent_cer.command == base.CER.code and sent_cer.is_request and not sent_cer.is_proxiable
    (cea,) = messages(pair.to_client[0])
    assert cea.get(base.RESULT_CODE) == 2001
    assert cea.get(base.ORIGIN_HOST) == EIR.host
    assert pair.client.next_deadline() == pytest.approx(30.0)  # only the watchdog is left


@pytest.mark.parametrize(
    ("ours", "theirs", "common"),
    [
        ({1, 2}, {2, 3}, {2}),
        ({1, 2}, {RELAY}, {1, 2}),
        ({RELAY}, {5, 6}, {5, 6}),
        ({1}, {3}, set()),
        ({RELAY}, {RELAY}, {RELAY}),
    ],
)
def test_common_applications(ours: set[int], theirs: set[int], common: set[int]) -> None:
    assert common_applications(ours, theirs) == common


@pytest.mark.parametrize("relay_side", ["client", "server"])
def test_relay_only_peer_is_common_with_everything(relay_side: str) -> None:
    """freeDiameter advertises only Relay (0xffffffff) in Auth-Application-Id: that must open."""
    relay = caps(MME if relay_side == "client" else EIR, auth=(RELAY,), vendor=())
    ccfg = config(MME, relay if relay_side == "client" else None)
    scfg = config(EIR, relay if relay_side == "server" else None)
    pair = Pair.make(ccfg, scfg, open=False)
    pair.client.start(0.0)
    pair.pump()
    assert types(pair.client_events) == types(pair.server_events) == ["ConnectionOpened"]
    opened = pair.server_events[0]
    assert isinstance(opened, ConnectionOpened)
    assert opened.peer.applications == {s13.APPLICATION_ID}  # Relay on either side: the other's apps
    client_opened = pair.client_events[0]
    assert isinstance(client_opened, ConnectionOpened)
    assert client_opened.peer.applications == {s13.APPLICATION_ID}


def test_no_common_application_answers_5010_and_closes() -> None:
    server = responder()
    other = caps(MME, auth=(4,), vendor=())
    events = server.receive_data(encode_message(cer(MME, other)), 1.0)
    assert types(events) == ["CapabilitiesRejected", "ConnectionClosed"]
    assert isinstance(events[0], CapabilitiesRejected) and events[0].result_code == 5010 and not events[0].by_peer
    (cea,) = messages(server.data_to_send())
    assert cea.command == base.CER.code and not cea.is_request
    assert cea.get(base.RESULT_CODE) == 5010
    assert server.state is State.CLOSED
    assert server.receive_data(encode_message(cer()), 2.0) == []  # closed is final
    assert server.data_to_send() == b""


def test_initiator_sees_5010_from_the_peer() -> None:
    pair = Pair.make(config(MME, caps(MME, auth=(4,), vendor=())), open=False)
    pair.client.start(0.0)
    pair.pump()
    assert types(pair.server_events) == ["CapabilitiesRejected", "ConnectionClosed"]
    assert types(pair.client_events) == ["CapabilitiesRejected", "ConnectionClosed"]
    rejected = pair.client_events[0]
    assert isinstance(rejected, CapabilitiesRejected) and rejected.by_peer and rejected.result_code == 5010
    assert pair.client.state is State.CLOSED


def test_admission_refusal_answers_3010_and_closes() -> None:
    seen = []

    def admit(info: object) -> int | None:
        seen.append(info)
        return int(base.ResultCode.DIAMETER_UNKNOWN_PEER)

    server = responder(admit=admit)
    events = server.receive_data(encode_message(cer()), 1.0)
    assert types(events) == ["CapabilitiesRejected", "ConnectionClosed"]
    assert isinstance(events[0], CapabilitiesRejected) and events[0].result_code == 3010
    (cea,) = messages(server.data_to_send())
    assert cea.get(base.RESULT_CODE) == 3010
    assert server.state is State.CLOSED
    assert len(seen) == 1


@pytest.mark.parametrize("first", ["ecr", "dwr", "dpr", "dwa", "dpa", "eca", "cea"])
def test_anything_but_cer_first_closes_without_an_answer(first: str) -> None:
    server = responder()
    if first == "ecr":
        msg = ecr()
        msg.hop_by_hop = 3
    elif first in ("dwr", "dwa"):
        msg = request_msg(base.DWR)
    elif first in ("dpr", "dpa"):
        msg = request_msg(base.DPR, extra=[])
        msg.add(base.DISCONNECT_CAUSE, 0)
    elif first == "eca":
        msg = ecr()
    else:
        msg = cer()
    if first in ("dwa", "dpa", "eca", "cea"):
        msg.flags = 0
        msg.add(base.RESULT_CODE, 2001)
    events = server.receive_data(encode_message(msg), 1.0)
    assert types(events) == ["ConnectionClosed"], first
    assert server.state is State.CLOSED
    assert server.data_to_send() == b""
    assert server.next_deadline() is None  # the CER wait died with the connection


def test_cer_missing_origin_host_gets_5005_with_failed_avp() -> None:
    server = responder()
    events = server.receive_data(encode_message(cer(drop=(base.ORIGIN_HOST.code,))), 1.0)
    assert types(events) == ["CapabilitiesRejected", "ConnectionClosed"]
    (cea,) = messages(server.data_to_send())
    assert cea.get(base.RESULT_CODE) == 5005
    assert not cea.flags & FLAG_ERROR
    failed = cea.find(base.FAILED_AVP)
    assert failed is not None
    assert [c.code for c in failed.children()] == [base.ORIGIN_HOST.code]


def test_responder_cer_timeout() -> None:
    server = responder(capabilities_timeout=4.0)
    assert server.next_deadline() == 4.0
    assert server.handle_timer(3.999) == []
    events = server.handle_timer(4.0)
    assert types(events) == ["ConnectionClosed"]
    assert server.state is State.CLOSED
    assert server.data_to_send() == b""


def test_initiator_cea_timeout() -> None:
    client = PeerConnection(config(MME, capabilities_timeout=3.0), Role.INITIATOR, 10.0)
    assert client.next_deadline() is None  # nothing to wait for before start()
    client.start(10.0)
    assert client.next_deadline() == 13.0
    assert client.handle_timer(12.5) == []
    assert types(client.handle_timer(13.0)) == ["ConnectionClosed"]
    assert client.state is State.CLOSED


def test_second_cer_on_open_connection_gets_5012_and_stays_open() -> None:
    pair = Pair.make()
    pair.server_events += pair.server.receive_data(encode_message(cer(hbh=99, e2e=99)), 1.0)
    assert pair.server_events == []
    (cea,) = messages(pair.server.data_to_send())
    assert cea.hop_by_hop == 99 and cea.get(base.RESULT_CODE) == 5012
    assert pair.server.state is State.OPEN
    # Still usable.
    hbh = pair.client.send_request(ecr(), 1.0)
    pair.pump()
    assert types(pair.server_events) == ["RequestReceived"]
    assert hbh in pair.client.pending_requests()


@pytest.mark.parametrize("code", [3010, 5010, 4003, 5012])
def test_initiator_receiving_cea_error_closes(code: int) -> None:
    client = PeerConnection(config(MME), Role.INITIATOR, 0.0)
    client.start(0.0)
    (sent,) = messages(client.data_to_send())
    cea = cer(EIR, hbh=sent.hop_by_hop, e2e=sent.end_to_end)
    cea.flags = 0
    cea.avps.insert(0, cea.avps[0].__class__(base.RESULT_CODE.code, 0x40, 0, code.to_bytes(4, "big")))
    events = client.receive_data(encode_message(cea), 1.0)
    assert types(events) == ["CapabilitiesRejected", "ConnectionClosed"]
    assert isinstance(events[0], CapabilitiesRejected) and events[0].result_code == code and events[0].by_peer
    assert client.state is State.CLOSED


def test_invalid_cea_closes() -> None:
    client = PeerConnection(config(MME), Role.INITIATOR, 0.0)
    client.start(0.0)
    (sent,) = messages(client.data_to_send())
    bad = request_msg(base.CER, EIR, hbh=sent.hop_by_hop, e2e=sent.end_to_end)  # no Result-Code etc.
    bad.flags = 0
    events = client.receive_data(encode_message(bad), 1.0)
    assert types(events) == ["CapabilitiesRejected", "ConnectionClosed"]


def test_cer_to_initiator_closes() -> None:
    client = PeerConnection(config(MME), Role.INITIATOR, 0.0)
    client.start(0.0)
    client.data_to_send()
    assert types(client.receive_data(encode_message(cer(EIR)), 1.0)) == ["ConnectionClosed"]
    assert client.data_to_send() == b""


def test_dictionary_has_the_s13_command() -> None:
    assert DICT.command(s13.APPLICATION_ID, 324) is s13.ECR
    assert isinstance(ConnectionClosed("x"), ConnectionClosed)
