"""tshark decodes a whole S13 session our codec encoded, written as a pcap by ``eir.pcap``.

Zero expert warnings (checksums checked, sequence numbers consistent, AVP lengths right), exactly the
number of Diameter messages written, and every field value equal to what we sent.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from eir.pcap import PcapWriter, internet_checksum
from protocols.diameter import Dictionary
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.answers import LocalNode, error_answer, make_answer
from protocols.diameter.errors import ProtocolError
from protocols.diameter.message import FLAG_PROXIABLE, FLAG_REQUEST, Avp, Message, encode_message
from protocols.diameter.validate import Validator
from tests.support.tshark import expert_warnings, fields, require_tshark

pytestmark = pytest.mark.interop

DICT = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
EIR = LocalNode("eir.example.org", "example.org")
MME = LocalNode("mme.example.org", "example.org")
PORT = 3870
IMEIS = ["35209900176148", "49015420323751", "35693803564380"]
STATUSES = list(s13.EquipmentStatus)


def ecr(hbh: int, imei: str, user: str) -> Message:
    msg = Message(324, s13.APPLICATION_ID, FLAG_REQUEST | FLAG_PROXIABLE, hbh, hbh + 1000)
    msg.add(base.SESSION_ID, f"mme.example.org;1;{hbh}").add(base.AUTH_SESSION_STATE, 1)
    msg.avps += MME.origin_avps
    msg.add(base.DESTINATION_REALM, "example.org")
    msg.add(s13.TERMINAL_INFORMATION, [Avp.new(s13.IMEI, imei), Avp.new(s13.SOFTWARE_VERSION, "01")])
    msg.add(base.USER_NAME, "001010123456789" if user else "")
    return msg


def session() -> list[tuple[bool, Message]]:
    """(from_client, message) for CER..DPA; the hop-by-hop id of message i is 100 + i // 2."""
    out: list[tuple[bool, Message]] = []
    cer = Message(257, 0, FLAG_REQUEST, 100, 1100).add(base.ORIGIN_HOST, MME.host).add(base.ORIGIN_REALM, MME.realm)
    cer.add(base.HOST_IP_ADDRESS, "127.0.0.1").add(base.VENDOR_ID, 0).add(base.PRODUCT_NAME, "mme")
    cer.add(base.AUTH_APPLICATION_ID, s13.APPLICATION_ID)
    cea = Message(257, 0, 0, 100, 1100).add(base.RESULT_CODE, 2001)
    cea.avps += EIR.origin_avps
    cea.add(base.HOST_IP_ADDRESS, "127.0.0.1").add(base.VENDOR_ID, 0).add(base.PRODUCT_NAME, "eirlab")
    cea.add(base.AUTH_APPLICATION_ID, s13.APPLICATION_ID)
    out += [(True, cer), (False, cea)]
    dwr = Message(280, 0, FLAG_REQUEST, 101, 1101).add(base.ORIGIN_HOST, MME.host).add(base.ORIGIN_REALM, MME.realm)
    dwa = Message(280, 0, 0, 101, 1101).add(base.RESULT_CODE, 2001)
    dwa.avps += EIR.origin_avps
    out += [(True, dwr), (False, dwa)]
    hbh = 102
    for imei, status in zip(IMEIS, STATUSES, strict=True):
        req = ecr(hbh, imei, "u")
        ans = make_answer(req, [Avp.new(base.RESULT_CODE, 2001), Avp.new(base.AUTH_SESSION_STATE, 1),
                                *EIR.origin_avps, Avp.new(s13.EQUIPMENT_STATUS, status)])
        out += [(True, req), (False, ans)]
        hbh += 1
    req = ecr(hbh, "35000000000000", "u")
    exp = Avp.new(base.EXPERIMENTAL_RESULT, [Avp.new(base.VENDOR_ID, s13.VENDOR_3GPP),
                                             Avp.new(base.EXPERIMENTAL_RESULT_CODE, 5422)])
    out += [(True, req), (False, make_answer(req, [exp, Avp.new(base.AUTH_SESSION_STATE, 1), *EIR.origin_avps]))]
    hbh += 1
    bad = ecr(hbh, "35209900176148", "u")
    # Auth-Session-State missing: 5005 with a zero-filled 4-octet example in Failed-AVP. (A missing
    # Grouped or string AVP gets an empty example, which Wireshark flags as "Data is empty".)
    del bad.avps[1]
    with pytest.raises(ProtocolError) as info:
        Validator(DICT, frozenset({s13.APPLICATION_ID})).check_request(bad)
    err = info.value
    assert err.result_code == 5005
    out += [(True, bad), (False, error_answer(err, EIR, DICT, bad))]
    hbh += 1
    dpr = Message(282, 0, FLAG_REQUEST, hbh, hbh + 1000).add(base.ORIGIN_HOST, MME.host)
    dpr.add(base.ORIGIN_REALM, MME.realm).add(base.DISCONNECT_CAUSE, 0)
    dpa = Message(282, 0, 0, hbh, hbh + 1000).add(base.RESULT_CODE, 2001)
    dpa.avps += EIR.origin_avps
    out += [(True, dpr), (False, dpa)]
    return out


def write_session(path: Path, msgs: list[tuple[bool, Message]], client: str = "127.0.0.1") -> None:
    t = 1_700_000_000.0
    with PcapWriter(str(path)) as writer:
        conv = writer.tcp_conversation((client, 40000), (client, PORT), ts=t)
        for i, (from_client, msg) in enumerate(msgs):
            raw = encode_message(msg)
            (conv.client_sends if from_client else conv.server_sends)(raw, t + 0.001 * (i + 1))
        conv.close(t + 1)


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[bool, Message]]]:
    require_tshark()
    path = tmp_path_factory.mktemp("pcap") / "s13.pcap"
    msgs = session()
    write_session(path, msgs)
    return path, msgs


def test_no_expert_warnings(pcap: tuple[Path, list[tuple[bool, Message]]]) -> None:
    assert expert_warnings(pcap[0], port=PORT) == []


def test_message_count_and_headers(pcap: tuple[Path, list[tuple[bool, Message]]]) -> None:
    path, msgs = pcap
    rows = fields(path, ["diameter.cmd.code", "diameter.hopbyhopid", "diameter.endtoendid", "diameter.flags",
                         "diameter.applicationId"], port=PORT)
    assert len(rows) == len(msgs)
    for row, (_, msg) in zip(rows, msgs, strict=True):
        assert int(row[0]) == msg.command
        assert int(row[1], 0) == msg.hop_by_hop and int(row[2], 0) == msg.end_to_end
        assert int(row[3], 0) == msg.flags
        assert int(row[4]) == msg.application


def test_field_values(pcap: tuple[Path, list[tuple[bool, Message]]]) -> None:
    path, msgs = pcap
    rows = fields(path, ["diameter.Session-Id", "diameter.IMEI", "diameter.User-Name", "diameter.Equipment-Status",
                         "diameter.Result-Code", "diameter.Experimental-Result-Code", "diameter.Origin-Host"],
                  display_filter="diameter.cmd.code == 324", port=PORT)
    ecrs = [m for _, m in msgs if m.command == 324]
    assert len(rows) == len(ecrs)
    for row, msg in zip(rows, ecrs, strict=True):
        assert row[0] == msg.get(base.SESSION_ID)
        assert row[6] == msg.get(base.ORIGIN_HOST)
        if msg.is_request:
            info = msg.find(s13.TERMINAL_INFORMATION)
            assert row[1] == ("" if info is None else info.find(s13.IMEI).value(s13.IMEI))  # type: ignore[union-attr]
            assert row[2] == msg.get(base.USER_NAME)
        else:
            status = msg.get(s13.EQUIPMENT_STATUS)
            assert row[3] == ("" if status is None else str(status))
            assert row[4] == str(msg.get(base.RESULT_CODE, ""))
            exp = msg.find(base.EXPERIMENTAL_RESULT)
            assert row[5] == ("" if exp is None else "5422")
    statuses = [r[3] for r in rows if r[3]]
    assert statuses == ["0", "1", "2"]
    assert [r[4] for r in rows if r[4]] == ["2001", "2001", "2001", "5005"]


def test_error_answer_failed_avp_decoded(pcap: tuple[Path, list[tuple[bool, Message]]]) -> None:
    names = ["diameter.Result-Code", "diameter.avp.code", "diameter.Auth-Session-State", "diameter.flags.error"]
    rows = fields(pcap[0], names, display_filter="diameter.Result-Code == 5005", port=PORT)
    assert len(rows) == 1
    codes = rows[0][1].split("|")
    assert "279" in codes and codes[codes.index("279") + 1] == "277"  # Failed-AVP { Auth-Session-State }
    # {Auth-Session-State} is required in the ECA (TS 29.272 §7.2.20): NO_STATE_MAINTAINED at the top,
    # then the zero-filled example inside Failed-AVP.
    assert rows[0][2] == "1|0"
    assert rows[0][3] in ("0", "False")  # 5xxx: no E bit


def test_ipv6_conversation_decodes_cleanly(tmp_path: Path) -> None:
    require_tshark()
    path = tmp_path / "v6.pcap"
    msgs = session()[:4]
    write_session(path, msgs, client="::1")
    assert expert_warnings(path, port=PORT) == []
    rows = fields(path, ["ipv6.src", "diameter.cmd.code"], port=PORT)
    assert [int(r[1]) for r in rows] == [257, 257, 280, 280]
    assert {r[0] for r in rows} == {"::1"}


# --- the pcap writer's own structure (RFC 791/793 checksums, libpcap header) ------------------------
def test_pcap_structure_and_sequence_numbers() -> None:
    buf = io.BytesIO()
    writer = PcapWriter(buf)
    conv = writer.tcp_conversation(("10.0.0.1", 1234), ("10.0.0.2", 3868), ts=5.25, client_isn=2**32 - 2)
    conv.client_sends(b"abcd", 6.5)
    conv.server_sends(b"xy", 7.0)
    conv.close(8.0)
    writer.close()
    data = buf.getvalue()
    assert struct.unpack("<IHHiIII", data[:24]) == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    pos, frames = 24, []
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[pos : pos + 16])
        assert incl == orig
        frames.append((sec + usec / 1e6, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    assert len(frames) == 3 + 2 + 3
    assert frames[0][0] == 5.25
    segs = []
    for _, f in frames:
        ip = f[14:34]
        assert internet_checksum(ip) in (0, 0xFFFF)  # a header with its checksum sums to all ones
        tcp = f[34:]
        pseudo = ip[12:20] + b"\0\x06" + len(tcp).to_bytes(2, "big")
        assert internet_checksum(pseudo + tcp) in (0, 0xFFFF)
        sport, _, seq, ack, _, flags = struct.unpack(">HHIIBB", tcp[:14])
        segs.append((sport, seq, ack, flags, tcp[20:]))
    c0 = 2**32 - 2
    assert segs[0][:4] == (1234, c0, 0, 0x02)
    assert segs[1][1:4] == (5000, c0 + 1, 0x12)
    assert segs[3][1:3] == (2**32 - 1, 5001) and segs[3][4] == b"abcd"
    assert segs[4][1:3] == (5001, 3)  # wrapped past 2**32
    assert segs[5][1:4] == (3, 5003, 0x11)  # client FIN
    assert segs[6][1:4] == (5003, 4, 0x11)
    assert segs[7][1:4] == (4, 5004, 0x10)


def test_internet_checksum_rfc1071_example() -> None:
    # RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement), checksum 220d.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
