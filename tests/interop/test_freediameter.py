"""Interop with a real third-party Diameter stack: freeDiameter 1.2.1 (the stack Open5GS embeds).

Three set-ups, each against a private ``freeDiameterd`` on its own free port, TCP only, TLS off:

1. freeDiameterd connects to our node: CER/CEA (its CER advertises only the Relay application, which
   we must take as common with S13), DWR/DWA on its Tw of 6 s, and its DPR when it is stopped.
2. our node connects to freeDiameterd: CER/CEA, then our graceful ``close()`` (DPR, its DPA).
3. freeDiameterd as a relay (DRA) between our MME-side client and our EIR-side server: ECR/ECA for
   application 16777252 both ways through a real agent (Route-Record, Hop-by-Hop rewrite), and the
   relay's own error answer for a realm it cannot route.

What freeDiameterd saw is read from its ``dbg_msg_dumps`` output; what our side saw from the link
objects and the ``eir.diameter`` log events. Every wait is bounded and polls a log or a future.

freeDiameter 1.2.1 behaviour these tests pin down (quirks, not our bugs):
- its CER/CEA advertise only Auth-Application-Id 0xffffffff (Relay); we take it as common with S13;
- as a relay it has no dictionary entry for command 324 and forwards ECR/ECA unparsed (logging an
  ERROR line per message), adds Route-Record to the request (the client) AND to the answer (the EIR);
- its own 3002 answer for an unroutable realm has the E bit but NOT the P bit of the request;
- its first connection to a ConnectPeer comes after a random 0..4 s delay.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from eir.diameter.transport import DiameterNode, NodeConfig, PeerLink, RequestHandler
from protocols.diameter import Avp, Dictionary, LocalNode, Message, make_answer
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.message import FLAG_PROXIABLE
from protocols.diameter.peer import PeerConfig
from tests.support.freediameter import freediameter, require_freediameterd
from tests.support.servers import free_port

pytestmark = [pytest.mark.interop]

DICT = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
S13 = s13.APPLICATION_ID
ES = s13.EquipmentStatus
#: The EIR's register for the relay test: 14-digit IMEIs (TAC + SNR) and their Equipment-Status.
REGISTER = {"35693803564380": ES.WHITELISTED, "49015420323751": ES.BLACKLISTED, "86001203948576": ES.GREYLISTED}


@pytest.fixture(autouse=True)
def _needs_freediameterd() -> None:
    require_freediameterd()


def make_node(host: str, realm: str, handler: RequestHandler | None = None, *, watchdog: float = 30.0) -> DiameterNode:
    """One of our S13 nodes. Tw 30 s by default so that freeDiameterd (Tw 6 s) sends the DWRs."""
    caps = Capabilities(LocalNode(host, realm), vendor_applications=((s13.VENDOR_3GPP, S13),),
                        supported_vendors=(s13.VENDOR_3GPP,))
    return DiameterNode(NodeConfig(PeerConfig(caps, DICT, watchdog_interval=watchdog)), handler)


async def open_link(node: DiameterNode, timeout: float = 10.0) -> PeerLink:
    """The first link of ``node`` whose capabilities exchange succeeded (an accepted connection)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for link in node.links:
            if link.opened.done() and not link.opened.exception():
                return link
        await asyncio.sleep(0.02)
    raise AssertionError(f"no open connection on our node within {timeout} s: links={node.links}")


def ecr(origin_host: str, origin_realm: str, dest_realm: str, imei: str, n: int) -> Message:
    """An ECR as an MME builds it (29.272 §7.2.19); End-to-End is left to the link."""
    m = Message(324, S13, FLAG_PROXIABLE)
    m.add(base.SESSION_ID, f"{origin_host};1700000000;{n}")
    m.add(base.AUTH_SESSION_STATE, 1)
    m.add(base.ORIGIN_HOST, origin_host).add(base.ORIGIN_REALM, origin_realm)
    m.add(base.DESTINATION_REALM, dest_realm)
    m.add(s13.TERMINAL_INFORMATION, [Avp.new(s13.IMEI, imei), Avp.new(s13.SOFTWARE_VERSION, "01")])
    return m


# ----------------------------------------------------------------------------------------------- 1
async def test_freediameter_connects_to_us_watchdog_and_dpr(tmp_path: Path, peer_events: list[str]) -> None:
    node = make_node("eir.localdomain", "localdomain")
    port = free_port()
    await node.listen("127.0.0.1", port)
    try:
        async with freediameter(tmp_path, "fd.localdomain", "localdomain", tw_timer=6,
                                connect_peers=[("eir.localdomain", "127.0.0.1", port)]) as fd:
            # Open on both sides.
            await fd.await_open("eir.localdomain")
            link = await open_link(node)
            info = await link.opened
            assert info.host == "fd.localdomain" and info.realm == "localdomain"
            assert info.product_name == "freeDiameter"
            # Its CER advertised only the Relay application: common with S13 (RFC 6733 §5.3).
            cer = await fd.await_message("SND", "eir.localdomain", "Capabilities-Exchange-Request")
            assert [v.split()[0] for v in cer.avps("Auth-Application-Id")] == ["4294967295"]
            assert not cer.avps("Vendor-Specific-Application-Id") and not cer.avps("Acct-Application-Id")
            assert info.applications == frozenset({S13})
            cea = await fd.await_message("RCV", "eir.localdomain", "Capabilities-Exchange-Answer")
            assert "2001" in (cea.avp("Result-Code") or "")

            # DWR from fd (Tw 6 s, jittered to 4..8 s) answered by our DWA with 2001 and the same Hop-by-Hop.
            dwr = await fd.await_message("SND", "eir.localdomain", "Device-Watchdog-Request", timeout=15)
            dwa = await fd.await_message("RCV", "eir.localdomain", "Device-Watchdog-Answer", timeout=5)
            assert dwa.hop_by_hop == dwr.hop_by_hop and dwa.end_to_end == dwr.end_to_end
            assert "2001" in (dwa.avp("Result-Code") or "")
            assert dwa.avp("Origin-Host") == '"eir.localdomain"'
            assert not link.closed.done()

            # SIGTERM: fd sends DPR (REBOOTING); we answer DPA and close; fd exits without its 16 s wait.
            started = time.monotonic()
            rc = await fd.astop(timeout=20)
            took = time.monotonic() - started
            assert rc == 0, fd.fail(f"exit status {rc}")
            reason = await asyncio.wait_for(asyncio.shield(link.closed), 5)
            assert reason == "peer sent DPR"
            dpa = await fd.await_message("RCV", "eir.localdomain", "Disconnect-Peer-Answer", timeout=1)
            assert "2001" in (dpa.avp("Result-Code") or "")
            assert took < 10, fd.fail(f"freeDiameterd took {took:.1f} s to exit: our DPA did not reach it?")
    finally:
        await node.close(timeout=2)
    dpr_events = [e for e in peer_events if "peer_event=dpr-received" in e]
    assert len(dpr_events) == 1 and dpr_events[0].endswith("cause=0"), peer_events
    closed = [e for e in peer_events if "peer_event=closed" in e]
    assert closed and "reason=peer sent DPR" in closed[0], peer_events
    assert peer_events.index(dpr_events[0]) < peer_events.index(closed[0])


# ----------------------------------------------------------------------------------------------- 2
async def test_we_connect_to_freediameter_and_close_gracefully(tmp_path: Path, peer_events: list[str]) -> None:
    # Our Tw is 6 s (DWR after 4..8 s idle), fd's 30 s: here it is our DWR that fd must answer.
    node = make_node("mme.localdomain", "localdomain", watchdog=6)
    try:
        async with freediameter(tmp_path, "fd.localdomain", "localdomain", tw_timer=30,
                                acl_wl=["mme.localdomain"]) as fd:
            link = await node.connect("127.0.0.1", fd.port, peer_host="fd.localdomain", timeout=10)
            info = await link.opened
            assert info.host == "fd.localdomain" and info.applications == frozenset({S13})
            await fd.await_open("mme.localdomain")
            cer = await fd.await_message("RCV", "<unknown peer>", "Capabilities-Exchange-Request")
            assert cer.avp("Origin-Host") == '"mme.localdomain"'
            cea = await fd.await_message("SND", "mme.localdomain", "Capabilities-Exchange-Answer")
            assert "2001" in (cea.avp("Result-Code") or "")

            # Our DWR, fd's DWA; our watchdog stays OKAY and the link open.
            dwr = await fd.await_message("RCV", "mme.localdomain", "Device-Watchdog-Request", timeout=12)
            assert dwr.avp("Origin-Host") == '"mme.localdomain"'
            dwa = await fd.await_message("SND", "mme.localdomain", "Device-Watchdog-Answer", timeout=2)
            assert dwa.hop_by_hop == dwr.hop_by_hop and "2001" in (dwa.avp("Result-Code") or "")
            deadline = time.monotonic() + 2
            while link.conn._dwr_pending and time.monotonic() < deadline:  # the DWA reaches us
                await asyncio.sleep(0.02)
            assert not link.conn._dwr_pending and link.conn.watchdog.value == "okay" and not link.closed.done()

            mark = len(fd.log())
            await node.close(timeout=5)  # DPR, wait for its DPA, close
            assert link.closed.done() and link.closed.result() == "DPA received"
            dpr = await fd.await_message("RCV", "mme.localdomain", "Disconnect-Peer-Request", timeout=5)
            assert "REBOOTING" in (dpr.avp("Disconnect-Cause") or "")
            await fd.await_message("SND", "mme.localdomain", "Disconnect-Peer-Answer", timeout=5)
            # fd's peer state machine records the disconnection: OPEN -> CLOSING on our DPR, then (a peer
            # it only knew from its acl_wl) CLOSED -> ZOMBIE once the transport is gone.
            await fd.await_log(r"'STATE_OPEN'\s+-> 'STATE_CLOSING'\s+'mme\.localdomain'", timeout=5, start=mark)
            await fd.await_log(r"'STATE_CLOSED'\s+-> STATE_ZOMBIE \(terminated\)\s+'mme\.localdomain'", timeout=5,
                               start=mark)
    finally:
        await node.close(timeout=2)
    assert any("peer_event=closed" in e and "reason=DPA received" in e for e in peer_events), peer_events


# ----------------------------------------------------------------------------------------------- 3
class Eir:
    """The EIR side: answers ECR from :data:`REGISTER` (2001 + Equipment-Status, else 5422)."""

    def __init__(self) -> None:
        self.node = make_node("eir.eir.test", "eir.test", self.handle)
        self.received: list[Message] = []

    def handle(self, link: PeerLink, batch: list[Message]) -> None:
        origin = self.node.config.peer.capabilities.node.origin_avps
        for req in batch:
            self.received.append(req)
            ti = req.find(s13.TERMINAL_INFORMATION)
            imei_avp = ti.find(s13.IMEI) if ti is not None else None
            status = REGISTER.get(imei_avp.value(s13.IMEI)[:14]) if imei_avp is not None else None
            avps: list[Avp]
            if status is None:
                er = [Avp.new(base.VENDOR_ID, s13.VENDOR_3GPP), Avp.new(base.EXPERIMENTAL_RESULT_CODE, 5422)]
                avps = [Avp.new(base.EXPERIMENTAL_RESULT, er), Avp.new(base.AUTH_SESSION_STATE, 1), *origin]
            else:
                avps = [Avp.new(base.RESULT_CODE, 2001), Avp.new(base.AUTH_SESSION_STATE, 1), *origin,
                        Avp.new(s13.EQUIPMENT_STATUS, int(status))]
            link.answer(make_answer(req, avps), req)


async def test_ecr_through_freediameter_relay(tmp_path: Path) -> None:
    eir = Eir()
    mme = make_node("mme.mme.test", "mme.test")
    eir_port = free_port()
    await eir.node.listen("127.0.0.1", eir_port)
    try:
        async with freediameter(
            tmp_path, "dra.dra.test", "dra.test",
            connect_peers=[("eir.eir.test", "127.0.0.1", eir_port)],
            acl_wl=["mme.mme.test"],
            # Only the EIR's realm has a route: anything else must come back as the relay's own error.
            rt_default=['dr="eir.test" : "eir.eir.test" += DEFAULT ;'],
        ) as fd:
            await fd.await_open("eir.eir.test")
            eir_link = await open_link(eir.node)
            assert (await eir_link.opened).host == "dra.dra.test"
            link = await mme.connect("127.0.0.1", fd.port, peer_host="dra.dra.test", timeout=10)
            await fd.await_open("mme.mme.test")

            for n, (imei, status) in enumerate([*REGISTER.items(), ("35693803564380", ES.WHITELISTED)], 1):
                req = ecr("mme.mme.test", "mme.test", "eir.test", imei + ("7" if n % 2 else ""), n)  # 15/14 digits
                sid = req.get(base.SESSION_ID)
                ans = await link.request(req, timeout=5)
                assert not ans.is_request and not ans.is_error and ans.is_proxiable
                assert ans.command == 324 and ans.application == S13
                assert ans.get(base.SESSION_ID) == sid and ans.avps[0].code == base.SESSION_ID.code
                assert ans.end_to_end == req.end_to_end and ans.hop_by_hop == req.hop_by_hop
                assert ans.get(base.RESULT_CODE) == 2001
                assert ans.get(s13.EQUIPMENT_STATUS) == status, imei
                assert ans.get(base.ORIGIN_HOST) == "eir.eir.test"
                # What the EIR received: the same ECR, with the relay's Route-Record and its own Hop-by-Hop.
                got = eir.received[-1]
                assert got.get(base.SESSION_ID) == sid and got.end_to_end == req.end_to_end
                assert got.hop_by_hop != req.hop_by_hop
                assert got.get(base.ORIGIN_HOST) == "mme.mme.test"
                assert got.get_all(base.ROUTE_RECORD) == ["mme.mme.test"]
                # fd 1.2.1 also adds a Route-Record (the EIR's identity) to the answer on its way back.
                assert "eir.eir.test" in ans.get_all(base.ROUTE_RECORD)
            assert len(eir.received) == 4
            assert eir_link.conn.incoming_pending == 0 and eir.node.rejected == 0

            # An IMEI the register does not know: the EIR's Experimental-Result 5422 crosses the relay too.
            req = ecr("mme.mme.test", "mme.test", "eir.test", "99999999999999", 10)
            ans = await link.request(req, timeout=5)
            assert ans.get(base.RESULT_CODE) is None and ans.get(s13.EQUIPMENT_STATUS) is None
            er = ans.find(base.EXPERIMENTAL_RESULT)
            code = er.find(base.EXPERIMENTAL_RESULT_CODE) if er is not None else None
            assert code is not None and code.value(base.EXPERIMENTAL_RESULT_CODE) == 5422

            # fd's own view (dbg_msg_dumps): it has no dictionary entry for command 324, so it relays the
            # ECR/ECA without parsing their AVPs. It rewrites Hop-by-Hop toward the EIR and restores ours on
            # the way back; End-to-End is kept end to end.
            ecr_key, eca_key = (324, True), (324, False)
            for i, got in enumerate(eir.received):
                from_mme = await fd.await_message("RCV", "mme.mme.test", ecr_key, index=i)
                to_eir = await fd.await_message("SND", "eir.eir.test", ecr_key, index=i)
                from_eir = await fd.await_message("RCV", "eir.eir.test", eca_key, index=i)
                to_mme = await fd.await_message("SND", "mme.mme.test", eca_key, index=i)
                assert from_mme.name == "" and from_mme.avp("Route-Record") is None
                assert to_eir.avp("Route-Record") == '"mme.mme.test"'
                assert to_eir.hop_by_hop == got.hop_by_hop == from_eir.hop_by_hop
                assert from_mme.hop_by_hop == to_mme.hop_by_hop != got.hop_by_hop
                assert {from_mme.end_to_end, to_eir.end_to_end, from_eir.end_to_end, to_mme.end_to_end} == {
                    got.end_to_end}

            # A realm with no route: fd 1.2.1 answers by itself: 3002 DIAMETER_UNABLE_TO_DELIVER with the E bit,
            # Origin-Host/Realm the relay's, Error-Message "No suitable candidate to route the message to",
            # Session-Id and End-to-End kept; the EIR never sees the request. Quirk: fd does NOT copy the P bit
            # into this answer (RFC 6733 §6.2 says it should), because it has no dictionary entry for command 324;
            # our client takes the answer anyway (matched by Hop-by-Hop).
            req = ecr("mme.mme.test", "mme.test", "nowhere.test", "35693803564380", 11)
            ans = await link.request(req, timeout=5)
            assert ans.is_error and not ans.is_request
            assert not ans.is_proxiable  # fd quirk, see above
            assert ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_UNABLE_TO_DELIVER
            assert ans.get(base.ORIGIN_HOST) == "dra.dra.test" and ans.get(base.ORIGIN_REALM) == "dra.test"
            assert ans.get(base.SESSION_ID) == req.get(base.SESSION_ID) and ans.end_to_end == req.end_to_end
            assert "route" in (ans.get(base.ERROR_MESSAGE) or "")
            assert len(eir.received) == 5
            await fd.await_log(r"ROUTING ERROR", timeout=2)

            await fd.astop()  # before its peers (its 16 s wait otherwise); DPR to both of our nodes
            assert await asyncio.wait_for(asyncio.shield(link.closed), 5) == "peer sent DPR"
            assert await asyncio.wait_for(asyncio.shield(eir_link.closed), 5) == "peer sent DPR"
    finally:  # freediameter() has stopped fd first: it would wait 16 s for peers that vanished before it
        await mme.close(timeout=2)
        await eir.node.close(timeout=2)
