"""Independent implementations against ``eir serve`` (issue 5): python-diameter 0.9.0 as the MME,
freeDiameterd 1.2.1 as a relay (DRA) in front of the EIR, and tshark 4.0 decoding what our client
sent and received.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from protocols.diameter import Avp, LocalNode, Message, decode_message, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.message import FLAG_PROXIABLE, FLAG_REQUEST
from tests.s13.conftest import (
    EIR_HOST,
    EIR_REALM,
    S13,
    EirProcess,
    RawPeer,
    S13Client,
    assert_eca_shape,
    import_csv,
    unique_store_url,
    verdict,
)
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.interop, pytest.mark.redis]

WHITE, GREY, BLACK, UNKNOWN = "35209900176148", "35693803564380", "49015420323751", "99999999999999"
PAIRED, PAIRED_IMSI = "66666666123456", "001010123456789"
ROWS = [
    f"imei,{WHITE},,white,,,,,,",
    f"imei,{GREY},,grey,,,,,,",
    f"imei,{BLACK},,black,stolen,,,,,",
    f"imei,{PAIRED},,black,stolen,,,,,",
    f"imei,{PAIRED},,white,,,{PAIRED_IMSI},,,",
]


@pytest.fixture
def eir(redis_server: RedisServer, eir_factory, tmp_path: Path) -> EirProcess:  # type: ignore[no-untyped-def]
    url = unique_store_url(redis_server)
    import_csv(tmp_path / "seed", ROWS, url)
    return eir_factory(url)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------- python-diameter
def test_python_diameter_mme_client(eir: EirProcess) -> None:
    """python-diameter builds the CER, ECRs and DPR and decodes our CEA, ECAs and DPA (raw TCP socket)."""
    diameter = pytest.importorskip("diameter")
    from diameter.message import Message as PdMessage
    from diameter.message.avp.grouped import TerminalInformation, VendorSpecificApplicationId
    from diameter.message.commands import CapabilitiesExchangeRequest, DisconnectPeerRequest, MeIdentityCheckRequest
    from diameter.message.constants import APP_3GPP_S13_S13, VENDOR_TGPP

    assert diameter is not None and APP_3GPP_S13_S13 == S13
    peer = RawPeer(eir.port)
    try:
        cer = CapabilitiesExchangeRequest()
        cer.header.hop_by_hop_identifier, cer.header.end_to_end_identifier = 0x100, 0x200
        cer.origin_host, cer.origin_realm = b"mme.pyd.test", EIR_REALM.encode()
        cer.host_ip_address = ["127.0.0.1"]
        cer.vendor_id, cer.product_name = VENDOR_TGPP, "python-diameter"
        cer.supported_vendor_id = [VENDOR_TGPP]
        cer.vendor_specific_application_id = [VendorSpecificApplicationId(vendor_id=VENDOR_TGPP,
                                                                          auth_application_id=APP_3GPP_S13_S13)]
        cea = PdMessage.from_bytes(peer.exchange(cer.as_bytes()))
        assert type(cea).__name__ == "CapabilitiesExchangeAnswer"
        assert cea.result_code == 2001 and cea.origin_host == EIR_HOST.encode()
        assert cea.header.hop_by_hop_identifier == 0x100 and cea.header.end_to_end_identifier == 0x200
        apps = [v.auth_application_id for v in cea.vendor_specific_application_id]
        assert APP_3GPP_S13_S13 in apps or APP_3GPP_S13_S13 in (cea.auth_application_id or [])

        # (IMEI, Software-Version, User-Name, Destination-Realm) -> (Result-Code, Equipment-Status, Experimental)
        cases = [
            ((WHITE, "01", None, EIR_REALM), (2001, 0, None)),
            ((BLACK + "3", None, None, EIR_REALM), (2001, 1, None)),  # 15 digits
            ((GREY + "07", None, None, EIR_REALM), (2001, 2, None)),  # 16 digits (IMEISV)
            ((PAIRED, "01", PAIRED_IMSI, EIR_REALM), (2001, 0, None)),  # pairing beats the black IMEI
            ((PAIRED, "01", "001010999999999", EIR_REALM), (2001, 1, None)),
            ((UNKNOWN, "01", None, EIR_REALM), (None, None, 5422)),
            (("123", "01", None, EIR_REALM), (5004, None, None)),
            ((None, "01", None, EIR_REALM), (5005, None, None)),
            ((WHITE, None, None, "foreign.example"), (3003, None, None)),
        ]
        for n, ((imei, sv, imsi, realm), (rc, status, exp)) in enumerate(cases, 1):
            ecr = MeIdentityCheckRequest()
            ecr.header.application_id = APP_3GPP_S13_S13  # python-diameter leaves it 0
            ecr.header.is_proxyable = True
            ecr.header.hop_by_hop_identifier, ecr.header.end_to_end_identifier = 0x1000 + n, 0x2000 + n
            ecr.session_id = f"mme.pyd.test;1700000000;{n}"
            ecr.auth_session_state = 1
            ecr.origin_host, ecr.origin_realm = b"mme.pyd.test", EIR_REALM.encode()
            ecr.destination_realm = realm.encode()
            ecr.terminal_information = TerminalInformation(imei=imei, software_version=sv)
            if imsi is not None:
                ecr.user_name = imsi
            eca = PdMessage.from_bytes(peer.exchange(ecr.as_bytes()))
            assert type(eca).__name__ == "MeIdentityCheckAnswer", (n, eca)
            h = eca.header
            assert not h.is_request and h.application_id == APP_3GPP_S13_S13 and h.is_proxyable
            assert (h.hop_by_hop_identifier, h.end_to_end_identifier) == (0x1000 + n, 0x2000 + n)
            assert h.is_error == (rc is not None and 3000 <= rc < 4000), (n, h.is_error)
            assert eca.session_id == ecr.session_id and eca.origin_host == EIR_HOST.encode()
            assert eca.avps[0].code == base.SESSION_ID.code  # Session-Id first, as python-diameter read it
            assert eca.result_code == rc, (n, imei, eca.result_code)
            assert eca.equipment_status == status, (n, imei, eca.equipment_status)
            got_exp = eca.experimental_result.experimental_result_code if eca.experimental_result else None
            assert got_exp == exp, (n, imei, got_exp)
            if exp is not None:
                assert eca.experimental_result.vendor_id == VENDOR_TGPP
            if rc in (5004, 5005):
                (failed,) = eca.find_avps((base.FAILED_AVP.code, 0))  # generic AVP access: Grouped -> list
                (ti,) = failed.value
                assert (ti.code, ti.vendor_id) == (s13.TERMINAL_INFORMATION.code, VENDOR_TGPP)
                (inner,) = ti.value
                assert (inner.code, inner.vendor_id) == (s13.IMEI.code, VENDOR_TGPP)
                if rc == 5004:
                    assert inner.value == imei

        dpr = DisconnectPeerRequest()
        dpr.header.hop_by_hop_identifier, dpr.header.end_to_end_identifier = 0x300, 0x400
        dpr.origin_host, dpr.origin_realm, dpr.disconnect_cause = b"mme.pyd.test", EIR_REALM.encode(), 0
        dpa = PdMessage.from_bytes(peer.exchange(dpr.as_bytes()))
        assert type(dpa).__name__ == "DisconnectPeerAnswer" and dpa.result_code == 2001
    finally:
        peer.close()


# ---------------------------------------------------------------------------------------- freeDiameterd relay
async def test_freediameter_relay_between_mme_and_eir(eir: EirProcess, tmp_path: Path) -> None:
    fdmod = pytest.importorskip("tests.support.freediameter")
    fdmod.require_freediameterd()
    mme = S13Client("mme.mme.test", origin_realm="mme.test")
    try:
        async with fdmod.freediameter(
            tmp_path / "fd", "dra.dra.test", "dra.test",
            connect_peers=[(EIR_HOST, "127.0.0.1", eir.port)], acl_wl=["mme.mme.test"],
            rt_default=[f'dr="{EIR_REALM}" : "{EIR_HOST}" += DEFAULT ;'],
        ) as fd:
            await fd.await_open(EIR_HOST)
            await mme.connect(fd.port, peer_host="dra.dra.test")
            await fd.await_open("mme.mme.test")

            cases = [(WHITE, {}, "white"), (BLACK, {"sv": "01"}, "black"), (GREY + "0", {}, "grey"),
                     (PAIRED, {"imsi": PAIRED_IMSI}, "white"), (PAIRED, {"imsi": "001010999999999"}, "black"),
                     (UNKNOWN, {}, "unknown"), (WHITE, {"dest_host": EIR_HOST}, "white"),
                     (WHITE, {"route_record": ("mme-edge.mme.test",)}, "white")]
            for imei, kw, want in cases:
                ans = await mme.check(imei, **kw)
                assert verdict(ans) == want, (imei, kw)
                assert EIR_HOST in ans.get_all(base.ROUTE_RECORD)  # fd 1.2.1 adds it to the answer

            ans = await mme.check("12345")  # the EIR's 5004 and its Failed-AVP cross the relay intact
            assert ans.get(base.RESULT_CODE) == 5004
            (ti,) = ans.find(base.FAILED_AVP).children()
            (imei_avp,) = ti.children()
            assert imei_avp.code == s13.IMEI.code and imei_avp.value(s13.IMEI) == "12345"

            # What the relay sent to the EIR carried its Route-Record(s): the EIR accepted them (2001 above).
            n = mme.sent
            for i in range(n):
                to_eir = await fd.await_message("SND", EIR_HOST, (324, True), index=i)
                assert "mme.mme.test" in " ".join(to_eir.avps("Route-Record")), to_eir.lines
                from_eir = await fd.await_message("RCV", EIR_HOST, (324, False), index=i)
                assert from_eir.hop_by_hop == to_eir.hop_by_hop
            await fd.astop()  # before its peers: DPR to the EIR and to us
            assert mme.link is not None
            assert await asyncio.wait_for(asyncio.shield(mme.link.closed), 5) == "peer sent DPR"
    finally:
        await mme.close()
    assert "reason=peer sent DPR" in eir.log(), eir.fail("the relay's DPR did not reach the EIR")


# ---------------------------------------------------------------------------------------- tshark
def write_pcap(path: Path, frames: list[tuple[bool, bytes]], client_port: int, server_port: int) -> None:
    """The conversation as a pcap (eir/pcap.py: handshake, one message per TCP segment, FINs)."""
    from eir.pcap import PcapWriter

    t = 1_700_000_000.0
    with PcapWriter(str(path)) as writer:
        conv = writer.tcp_conversation(("127.0.0.1", client_port), ("127.0.0.1", server_port), ts=t)
        for i, (from_client, data) in enumerate(frames, 1):
            (conv.client_sends if from_client else conv.server_sends)(data, t + i * 0.001)
        conv.close(t + (len(frames) + 1) * 0.001)


def _tshark(*args: str) -> str:
    out = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_tshark_decodes_our_ecr_and_eca(eir: EirProcess, tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    caps = Capabilities(LocalNode("mme.test", EIR_REALM), host_ip_addresses=("127.0.0.1",), product_name="eirlab-test",
                        vendor_applications=((s13.VENDOR_3GPP, S13),), supported_vendors=(s13.VENDOR_3GPP,))
    peer = RawPeer(eir.port)
    expected: list[tuple[str, str, str, str, str, str]] = []  # per ECR/ECA: (R, E, IMEI, status, result, exp)
    try:
        cea = decode_message(peer.exchange(encode_message(Message(257, 0, FLAG_REQUEST, 1, 1, list(caps.avps())))))
        assert cea.get(base.RESULT_CODE) == 2001
        cases = [  # (IMEI, Software-Version, Destination-Realm) -> (status, Result-Code, Experimental-Result-Code)
            ((WHITE, "01", EIR_REALM), ("0", "2001", "")),
            ((BLACK, None, EIR_REALM), ("1", "2001", "")),
            ((GREY + "0", "02", EIR_REALM), ("2", "2001", "")),
            ((UNKNOWN, "01", EIR_REALM), ("", "", "5422")),
            ((None, "01", EIR_REALM), ("", "5005", "")),
            (("12345", "01", EIR_REALM), ("", "5004", "")),
            ((WHITE, "01", "foreign.example"), ("", "3003", "")),
        ]
        for n, ((imei, sv, realm), (status, rc, exp)) in enumerate(cases, 1):
            req = Message(324, S13, FLAG_REQUEST | FLAG_PROXIABLE, 0x10 + n, 0x20 + n)
            req.add(base.SESSION_ID, f"mme.test;1700000000;{n}").add(base.AUTH_SESSION_STATE, 1)
            req.add(base.ORIGIN_HOST, "mme.test").add(base.ORIGIN_REALM, EIR_REALM).add(base.DESTINATION_REALM, realm)
            req.add(s13.TERMINAL_INFORMATION, ([Avp.new(s13.IMEI, imei)] if imei else [])
                    + ([Avp.new(s13.SOFTWARE_VERSION, sv)] if sv else []))
            ans = decode_message(peer.exchange(encode_message(req)))
            assert_eca_shape(ans, req)
            expected.append(("1", "0", imei or "", "", "", ""))
            expected.append(("0", "1" if rc.startswith("3") else "0", "", status, rc, exp))
        peer.exchange(encode_message(Message(282, 0, FLAG_REQUEST, 2, 2, [
            Avp.new(base.ORIGIN_HOST, "mme.test"), Avp.new(base.ORIGIN_REALM, EIR_REALM),
            Avp.new(base.DISCONNECT_CAUSE, 0)])))
    finally:
        peer.close()

    pcap = tmp_path / "s13.pcap"
    write_pcap(pcap, peer.frames, peer.client_port, peer.server_port)
    decode = ["-r", str(pcap), "-d", f"tcp.port=={peer.server_port},diameter"]
    # Every message we sent or received decodes as Diameter (a truncated one would vanish silently).
    assert len(_tshark(*decode, "-Y", "diameter").splitlines()) == len(peer.frames)
    rows = _tshark(*decode, "-Y", "diameter.cmd.code == 324", "-T", "fields", "-E", "separator=|",
                   "-E", "occurrence=f", "-e", "diameter.flags.request", "-e", "diameter.flags.error",
                   "-e", "diameter.applicationId",
                   "-e", "diameter.Session-Id", "-e", "diameter.IMEI", "-e", "diameter.Equipment-Status",
                   "-e", "diameter.Result-Code", "-e", "diameter.Experimental-Result-Code").splitlines()
    assert len(rows) == len(expected)
    for i, (row, want) in enumerate(zip(rows, expected, strict=True)):
        request, error, app, sid, imei, status, rc, exp = row.split("|")
        request, error = ({"True": "1", "False": "0"}.get(f, f) for f in (request, error))
        assert app == str(S13) and sid == f"mme.test;1700000000;{i // 2 + 1}", row
        got = (request, error, imei if request == "1" else "", status, rc, exp)
        assert got == want, (i, row)
    # And nothing tshark finds suspicious: no expert item of severity warning or above, in any protocol.
    warnings = _tshark(*decode, "-Y", "_ws.expert.severity >= warning")
    assert warnings.strip() == "", warnings
    assert _tshark(*decode, "-q", "-z", "expert,warn").strip() == ""  # its summary lists nothing either
