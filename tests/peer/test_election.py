"""Election (RFC 6733 §5.6.4) and the peer table."""

from __future__ import annotations

import pytest

from protocols.diameter import base_rfc6733 as base
from protocols.diameter.events import PeerInfo
from protocols.diameter.peer import elect
from protocols.diameter.registry import PeerRegistry


@pytest.mark.parametrize(
    ("local", "peer", "wins"),
    [
        ("b.example", "a.example", True),
        ("a.example", "b.example", False),
        ("B.EXAMPLE", "a.example", True),  # case-insensitive
        ("a.example", "B.example", False),
        ("Zed", "zed", False),  # equal ignoring case: not higher
        ("aa", "a", True),  # longer with the same prefix is higher (octet comparison)
        ("mme.x", "MME.Y", False),
    ],
)
def test_elect(local: str, peer: str, wins: bool) -> None:
    assert elect(local, peer) is wins


def info(host: str) -> PeerInfo:
    return PeerInfo(host, "example", frozenset({1}))


def test_winner_drops_its_own_initiated_connection() -> None:
    reg: PeerRegistry[str] = PeerRegistry("z.example")
    reg.initiating("A.example", "ours")
    verdict = reg.admit(info("a.example"), "theirs")
    assert verdict.refuse is None and verdict.drop == "ours"
    assert reg.get("A.EXAMPLE") == "theirs"
    assert reg.connecting == {}


def test_loser_answers_election_lost() -> None:
    reg: PeerRegistry[str] = PeerRegistry("a.example")
    reg.initiating("z.example", "ours")
    verdict = reg.admit(info("Z.example"), "theirs")
    assert verdict.refuse == base.ResultCode.ELECTION_LOST == 4003
    assert verdict.drop is None
    assert reg.get("z.example") is None
    assert reg.opened("z.example", "ours") is None  # our CEA arrives: that is the connection
    assert reg.get("z.example") == "ours"


def test_second_connection_from_an_open_peer_is_refused() -> None:
    reg: PeerRegistry[str] = PeerRegistry("eir")
    assert reg.admit(info("mme"), "one").refuse is None
    assert reg.admit(info("MME"), "two").refuse == 5012
    assert reg.admit(info("mme"), "one").refuse is None  # the same connection again is fine
    reg.closed("one")
    assert reg.admit(info("mme"), "two").refuse is None


def test_opened_returns_an_older_connection_to_drop() -> None:
    reg: PeerRegistry[str] = PeerRegistry("eir")
    reg.admit(info("peer"), "accepted")
    reg.initiating("peer", "mine")
    assert reg.opened("peer", "mine") == "accepted"
    assert reg.get("peer") == "mine"
    reg.closed("mine")
    assert reg.get("peer") is None and reg.connecting == {}


def test_registry_through_peer_connections() -> None:
    """The loser's PeerConnection answers the CER with 4003 via the admission hook."""
    from protocols.diameter.events import CapabilitiesRejected
    from protocols.diameter.peer import PeerConnection, Role

    from .helpers import EIR, MME, cer, config, encode_message, messages

    reg: PeerRegistry[object] = PeerRegistry(EIR.host)
    mine = object()
    reg.initiating(MME.host, mine)
    box: list[object] = []

    def admit(peer: PeerInfo) -> int | None:
        verdict = reg.admit(peer, box[0])
        return None if verdict.refuse is None else int(verdict.refuse)

    conn = PeerConnection(config(EIR, admit=admit), Role.RESPONDER, 0.0)
    box.append(conn)
    # "eir..." < "mme...": the EIR loses.
    events = conn.receive_data(encode_message(cer()), 1.0)
    assert isinstance(events[0], CapabilitiesRejected) and events[0].result_code == 4003
    (cea,) = messages(conn.data_to_send())
    assert cea.get(base.RESULT_CODE) == 4003
