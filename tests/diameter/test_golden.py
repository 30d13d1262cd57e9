"""Golden bytes derived by hand from RFC 6733 §3 (header), §4.1 (AVP header) and §4.2-§4.4 (data).

Each expected hex string is written field by field in the comments: a change in flag handling,
padding, vendor id placement or grouped length breaks the exact comparison.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest

from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.dictionary import AvpDef, AvpType
from protocols.diameter.message import (
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    Avp,
    Message,
    decode_message,
    encode_avp,
    encode_message,
)
from protocols.diameter.types import decode_value, encode_value


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# --- ECR / ECA (TS 29.272 §7.2.19/20) -----------------------------------------------------------------
ECR_HEX = """
01 00008c c0 000144 01000024 11111111 22222222
00000107 4000000b 733b3100
00000115 4000000c 00000001
00000108 4000000b 6d6d6500
00000128 4000000e 65782e6f 72670000
0000011b 4000000b 65697200
00000579 c0000038 000028af
  0000057a c000001a 000028af 33353230 39393030 31373631 34380000
  0000057b c000000e 000028af 31320000
"""
# header: version 1, length 140, flags R|P, code 324, app 16777252; Session-Id "s;1" (len 11, 1 pad);
# Auth-Session-State 1; Origin-Host "mme"; Origin-Realm "ex.org" (len 14, 2 pad); Destination-Realm
# "eir"; Terminal-Information V|M vendor 10415 len 12+28+16=56 holding IMEI (len 26, 2 pad) and
# Software-Version "12" (len 14, 2 pad).

ECA_HEX = """
01 000064 40 000144 01000024 11111111 22222222
00000107 4000000b 733b3100
0000010c 4000000c 000007d1
00000115 4000000c 00000001
00000108 4000000b 65697200
00000128 4000000e 65782e6f 72670000
000005a5 c0000010 000028af 00000001
"""
# flags P only (answer), Result-Code 2001, Equipment-Status 1 (BLACKLISTED) with V|M and vendor 10415.


def ecr() -> Message:
    msg = Message(324, s13.APPLICATION_ID, FLAG_REQUEST | FLAG_PROXIABLE, 0x11111111, 0x22222222)
    msg.add(base.SESSION_ID, "s;1").add(base.AUTH_SESSION_STATE, 1)
    msg.add(base.ORIGIN_HOST, "mme").add(base.ORIGIN_REALM, "ex.org").add(base.DESTINATION_REALM, "eir")
    msg.add(s13.TERMINAL_INFORMATION, [Avp.new(s13.IMEI, "35209900176148"), Avp.new(s13.SOFTWARE_VERSION, "12")])
    return msg


def eca() -> Message:
    msg = Message(324, s13.APPLICATION_ID, FLAG_PROXIABLE, 0x11111111, 0x22222222)
    msg.add(base.SESSION_ID, "s;1").add(base.RESULT_CODE, 2001).add(base.AUTH_SESSION_STATE, 1)
    msg.add(base.ORIGIN_HOST, "eir").add(base.ORIGIN_REALM, "ex.org")
    msg.add(s13.EQUIPMENT_STATUS, s13.EquipmentStatus.BLACKLISTED)
    return msg


def test_ecr_golden_bytes() -> None:
    assert encode_message(ecr()) == h(ECR_HEX)


def test_eca_golden_bytes() -> None:
    assert encode_message(eca()) == h(ECA_HEX)


def test_ecr_golden_bytes_decode_to_the_same_message() -> None:
    msg = decode_message(h(ECR_HEX))
    assert msg == ecr()
    info = msg.find(s13.TERMINAL_INFORMATION)
    assert info is not None
    imei = info.find(s13.IMEI)
    assert imei is not None and imei.value(s13.IMEI) == "35209900176148"
    assert imei.flags == 0xC0 and imei.vendor == 10415


def test_eca_golden_bytes_decode() -> None:
    msg = decode_message(h(ECA_HEX))
    assert msg == eca()
    assert not msg.is_request and msg.is_proxiable
    assert msg.get(s13.EQUIPMENT_STATUS) == 1


# --- CER / CEA (RFC 6733 §5.3) ----------------------------------------------------------------------
CER_HEX = """
01 000088 80 000101 00000000 00000001 00000002
00000108 4000000b 6d6d6500
00000128 4000000e 65782e6f 72670000
00000101 4000000e 00017f00 00010000
0000010a 4000000c 00000000
0000010d 0000000e 6569726c 61620000
00000102 4000000c 01000024
00000104 40000020
  0000010a 4000000c 000028af
  00000102 4000000c 01000024
"""
# flags R (CER is not proxiable), app 0; Host-IP-Address family 1 + 127.0.0.1 (len 14, 2 pad);
# Product-Name M bit clear (MUST NOT); Vendor-Specific-Application-Id grouped length 8+24=32.

CEA_HEX = """
01 000074 00 000101 00000000 00000001 00000002
0000010c 4000000c 000007d1
00000108 4000000b 65697200
00000128 4000000e 65782e6f 72670000
00000101 4000001a 00020000 00000000 00000000 00000000 00010000
0000010a 4000000c 00000000
0000010d 0000000e 6569726c 61620000
"""
# Host-IP-Address family 2 + ::1 (len 26, 2 pad).


def cer() -> Message:
    msg = Message(257, 0, FLAG_REQUEST, 1, 2)
    msg.add(base.ORIGIN_HOST, "mme").add(base.ORIGIN_REALM, "ex.org")
    msg.add(base.HOST_IP_ADDRESS, "127.0.0.1").add(base.VENDOR_ID, 0).add(base.PRODUCT_NAME, "eirlab")
    msg.add(base.AUTH_APPLICATION_ID, s13.APPLICATION_ID)
    msg.add(base.VENDOR_SPECIFIC_APPLICATION_ID,
            [Avp.new(base.VENDOR_ID, 10415), Avp.new(base.AUTH_APPLICATION_ID, s13.APPLICATION_ID)])
    return msg


def cea() -> Message:
    msg = Message(257, 0, 0, 1, 2)
    msg.add(base.RESULT_CODE, 2001).add(base.ORIGIN_HOST, "eir").add(base.ORIGIN_REALM, "ex.org")
    msg.add(base.HOST_IP_ADDRESS, ipaddress.ip_address("::1")).add(base.VENDOR_ID, 0)
    msg.add(base.PRODUCT_NAME, "eirlab")
    return msg


def test_cer_golden_bytes() -> None:
    assert encode_message(cer()) == h(CER_HEX)
    assert decode_message(h(CER_HEX)) == cer()


def test_cea_golden_bytes() -> None:
    assert encode_message(cea()) == h(CEA_HEX)
    assert decode_message(h(CEA_HEX)).get(base.HOST_IP_ADDRESS) == ipaddress.IPv6Address("::1")


# --- every data format (§4.2, §4.3) -----------------------------------------------------------------
T = AvpType
CASES = [
    (T.INTEGER32, -1, "ffffffff"),
    (T.INTEGER32, -(2**31), "80000000"),
    (T.INTEGER64, -2, "ffffffff fffffffe"),
    (T.INTEGER64, -(2**63), "80000000 00000000"),
    (T.UNSIGNED32, 2**32 - 1, "ffffffff"),
    (T.UNSIGNED64, 2**64 - 1, "ffffffff ffffffff"),
    (T.FLOAT32, 1.5, "3fc00000"),
    (T.FLOAT64, -2.5, "c0040000 00000000"),
    (T.ADDRESS, ipaddress.IPv4Address("192.0.2.1"), "0001 c0000201"),
    (T.ADDRESS, ipaddress.IPv6Address("2001:db8::1"), "0002 20010db8 00000000 00000000 00000001"),
    (T.TIME, datetime(1970, 1, 1, tzinfo=UTC), "83aa7e80"),  # 2208988800 s after 1900-01-01
    (T.TIME, datetime(2000, 1, 1, tzinfo=UTC), "bc17c200"),  # 3155673600
    (T.UTF8_STRING, "ü€", "c3bc e282ac"),
    (T.DIAMETER_IDENTITY, "eir.example.org", "6569722e 6578616d 706c652e 6f7267"),
    (T.DIAMETER_URI, "aaa://eir:3868", "6161613a 2f2f6569 723a3338 3638"),
    (T.ENUMERATED, 2, "00000002"),
    (T.OCTET_STRING, b"\x00\xff", "00ff"),
]


@pytest.mark.parametrize(
    ("avp_type", "value", "hex_data"), CASES, ids=[f"{c[0].value}-{i}" for i, c in enumerate(CASES)]
)
def test_value_encoding(avp_type: AvpType, value: object, hex_data: str) -> None:
    assert encode_value(avp_type, value) == h(hex_data)
    assert decode_value(avp_type, h(hex_data)) == value


def test_address_encodes_from_text() -> None:
    assert encode_value(T.ADDRESS, "192.0.2.1") == h("0001 c0000201")


def test_non_ascii_utf8_avp_length_counts_octets_not_characters() -> None:
    avp = Avp.new(base.USER_NAME, "ü€")  # 5 octets: length 13, 3 octets of padding
    assert encode_avp(avp) == h("00000001 4000000d c3bce282 ac000000")


def test_grouped_nested_two_levels() -> None:
    inner = Avp.new(base.VENDOR_SPECIFIC_APPLICATION_ID, [Avp.new(base.VENDOR_ID, 10415)])
    outer = Avp.new(base.FAILED_AVP, [inner])
    assert encode_avp(outer) == h("00000117 4000001c 00000104 40000014 0000010a 4000000c 000028af")
    (child,) = outer.children()
    assert child == inner
    assert child.children() == [Avp.new(base.VENDOR_ID, 10415)]


def test_vendor_avp_without_mandatory_flag() -> None:
    defn = AvpDef(1, "X", T.UNSIGNED32, vendor=10415)
    assert encode_avp(Avp.new(defn, 7, flags=0x80)) == h("00000001 80000010 000028af 00000007")


def test_v_flag_follows_the_vendor_field() -> None:
    # V is set iff a vendor id is present (§4.1): the encoder enforces it both ways.
    assert encode_avp(Avp(5, 0x40, 9, b""))[4] == 0xC0
    assert encode_avp(Avp(5, 0xC0, 0, b""))[4] == 0x40
