"""One test per Result-Code of validate.py's table (RFC 6733 §7), decode errors, and error answers."""

from __future__ import annotations

import pytest

from protocols.diameter import Dictionary
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.answers import LocalNode, error_answer
from protocols.diameter.errors import ProtocolError
from protocols.diameter.message import (
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    Avp,
    Message,
    decode_message,
    encode_avp,
    encode_message,
)
from protocols.diameter.validate import Validator

from .test_golden import ECR_HEX, ecr, h

DICT = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
V = Validator(DICT, frozenset({s13.APPLICATION_ID}))
NODE = LocalNode("eir.example", "example")


def rejects(msg: Message) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        V.check_request(msg)
    raw = encode_message(msg)
    with pytest.raises(ProtocolError) as fast:  # the one-pass path agrees on the first error
        V.decode_request(raw)
    assert fast.value.result_code == info.value.result_code
    return info.value


def test_valid_ecr_passes() -> None:
    assert V.check_request(ecr()) is s13.ECR


def test_3008_e_bit_on_request() -> None:
    msg = ecr()
    msg.flags |= FLAG_ERROR
    assert rejects(msg).result_code == 3008


def test_3008_p_bit_on_cer() -> None:
    msg = Message(257, 0, FLAG_REQUEST | FLAG_PROXIABLE, 1, 1).add(base.ORIGIN_HOST, "m").add(base.ORIGIN_REALM, "r")
    assert rejects(msg).result_code == 3008


def test_3007_unsupported_application() -> None:
    msg = ecr()
    msg.application = 4
    assert rejects(msg).result_code == 3007


def test_3001_unknown_command() -> None:
    msg = ecr()
    msg.command = 999
    assert rejects(msg).result_code == 3001


def test_5001_unknown_mandatory_avp_and_unknown_optional_ignored() -> None:
    unknown = Avp(99999, 0x40, 0, b"x")
    msg = ecr()
    msg.avps.append(unknown)
    err = rejects(msg)
    assert err.result_code == 5001 and err.failed_avp == unknown
    msg.avps[-1] = Avp(99999, 0x00, 0, b"x")
    assert V.check_request(msg) is s13.ECR


def test_5014_fixed_size() -> None:
    msg = ecr()
    msg.avps[1] = Avp(277, 0x40, 0, b"\0\0\1")
    err = rejects(msg)
    assert err.result_code == 5014 and err.failed_avp == msg.avps[1]


def test_5014_address() -> None:
    msg = Message(257, 0, FLAG_REQUEST, 1, 1).add(base.ORIGIN_HOST, "m").add(base.ORIGIN_REALM, "r")
    bad = Avp(257, 0x40, 0, b"\0\1\x7f\0\0")  # family 1 with 3 octets
    msg.avps.append(bad)
    msg.add(base.VENDOR_ID, 0).add(base.PRODUCT_NAME, "x")
    err = rejects(msg)
    assert err.result_code == 5014 and err.failed_avp == bad


def test_5014_nested_in_grouped_wraps_the_member() -> None:
    bad = Avp(266, 0x40, 0, b"\0\1")  # Vendor-Id with 2 octets
    vsai = Avp(260, 0x40, 0, encode_avp(bad) + encode_avp(Avp.new(base.AUTH_APPLICATION_ID, s13.APPLICATION_ID)))
    msg = ecr()
    msg.avps.insert(1, vsai)
    err = rejects(msg)
    assert err.result_code == 5014
    assert err.failed_avp is not None and err.failed_avp.key == (260, 0)
    assert err.failed_avp.children() == [bad]  # only the offending member (§7.5)


def test_5004_bad_enum() -> None:
    msg = ecr()
    msg.avps[1] = Avp.new(base.AUTH_SESSION_STATE, 7)
    err = rejects(msg)
    assert err.result_code == 5004 and err.failed_avp == msg.avps[1]


def test_5004_bad_utf8() -> None:
    msg = ecr()
    msg.avps.append(Avp(1, 0x40, 0, b"\xff\xfe"))  # User-Name
    assert rejects(msg).result_code == 5004


def test_5004_bad_utf8_inside_grouped() -> None:
    msg = ecr()
    msg.avps[5] = Avp.new(s13.TERMINAL_INFORMATION, [Avp(1402, 0xC0, 10415, b"\xc3")])
    err = rejects(msg)
    assert err.result_code == 5004
    assert err.failed_avp is not None and err.failed_avp.key == (1401, 10415)
    assert err.failed_avp.children() == [Avp(1402, 0xC0, 10415, b"\xc3")]


def test_5009_too_many() -> None:
    msg = ecr().add(base.DESTINATION_REALM, "again")
    err = rejects(msg)
    assert err.result_code == 5009 and err.failed_avp == msg.avps[-1]


def test_5008_not_allowed_in_closed_grouped() -> None:
    extra = Avp.new(base.ORIGIN_HOST, "x")
    vsai = Avp.new(base.VENDOR_SPECIFIC_APPLICATION_ID, [Avp.new(base.VENDOR_ID, 10415), extra])
    msg = ecr()
    msg.avps.insert(1, vsai)
    err = rejects(msg)
    assert err.result_code == 5008
    assert err.failed_avp is not None and err.failed_avp.children() == [extra]


def test_5005_missing_avp_zero_filled_example() -> None:
    msg = ecr()
    del msg.avps[1]  # Auth-Session-State: Enumerated, example is 4 zero octets
    err = rejects(msg)
    assert err.result_code == 5005 and err.failed_avp == Avp(277, 0x40, 0, bytes(4))


def test_5005_missing_vendor_avp_carries_vendor_id() -> None:
    msg = ecr()
    del msg.avps[5]  # Terminal-Information
    err = rejects(msg)
    assert err.result_code == 5005
    answer = encode_message(error_answer(err, NODE, DICT, msg))
    assert bytes.fromhex("00000579 c000000c 000028af") in answer  # V|M, length 12, Vendor-Id 10415


def test_5005_session_id_not_first() -> None:
    msg = ecr()
    msg.avps[0], msg.avps[1] = msg.avps[1], msg.avps[0]
    err = rejects(msg)
    assert err.result_code == 5005 and "not in its fixed position" in err.message
    assert err.failed_avp is not None and err.failed_avp.key == (263, 0)


def test_5011_bad_version() -> None:
    raw = bytearray(h(ECR_HEX))
    raw[0] = 2
    with pytest.raises(ProtocolError) as info:
        decode_message(bytes(raw))
    assert info.value.result_code == 5011 and info.value.header is not None
    assert info.value.header.hop_by_hop == 0x11111111


def test_5015_length_mismatch() -> None:
    raw = h(ECR_HEX) + bytes(4)
    with pytest.raises(ProtocolError) as info:
        decode_message(raw)
    assert info.value.result_code == 5015


def test_5014_avp_length_past_the_end_from_decode() -> None:
    raw = bytearray(h(ECR_HEX))
    raw[25:28] = (200).to_bytes(3, "big")  # Session-Id claims 200 octets
    with pytest.raises(ProtocolError) as info:
        decode_message(bytes(raw))
    assert info.value.result_code == 5014 and info.value.failed_avp is not None
    assert info.value.failed_avp.code == 263


# --- error_answer (§7.1, §7.2, §6.2) ----------------------------------------------------------------
def proxy_info(host: str, state: bytes) -> Avp:
    return Avp.new(base.PROXY_INFO, [Avp.new(base.PROXY_HOST, host), Avp.new(base.PROXY_STATE, state)])


def request_with_proxies() -> Message:
    msg = ecr()
    msg.avps += [proxy_info("a.example", b"1"), proxy_info("b.example", b"2")]
    return msg


def test_3xxx_answer_has_e_bit_and_answer_message_format() -> None:
    req = request_with_proxies()
    req.command = 999
    err = rejects(req)
    ans = error_answer(err, NODE, DICT, req)
    assert ans.flags == FLAG_ERROR | FLAG_PROXIABLE
    assert (ans.hop_by_hop, ans.end_to_end) == (req.hop_by_hop, req.end_to_end)
    assert ans.avps[0] == req.avps[0]
    assert ans.get(base.RESULT_CODE) == 3001
    assert ans.find_all(base.PROXY_INFO) == req.find_all(base.PROXY_INFO)
    assert ans.find(base.DESTINATION_HOST) is None and ans.find(base.DESTINATION_REALM) is None
    assert ans.find(base.AUTH_SESSION_STATE) is None  # not part of §7.2 answer-message
    out = decode_message(encode_message(ans))
    assert V.check_answer(out) is None  # unknown command: nothing to check it against
    out.command = 324
    assert V.check_answer(out) is s13.ECR  # E bit: checked against §7.2's answer-message


def test_5xxx_answer_has_no_e_bit_and_the_command_format() -> None:
    req = request_with_proxies()
    req.avps.insert(6, Avp(99999, 0x40, 0, b"zz"))
    err = rejects(req)
    ans = error_answer(err, NODE, DICT, req)
    assert ans.flags == FLAG_PROXIABLE and not ans.is_error
    assert (ans.hop_by_hop, ans.end_to_end) == (0x11111111, 0x22222222)
    assert ans.avps[0].key == (263, 0) and ans.get(base.SESSION_ID) == "s;1"
    assert [a.key for a in ans.avps[-2:]] == [(284, 0), (284, 0)]
    assert ans.find_all(base.PROXY_INFO) == req.find_all(base.PROXY_INFO)
    assert ans.get(base.AUTH_SESSION_STATE) == 1
    assert ans.get(base.ORIGIN_HOST) == "eir.example" and ans.get(base.RESULT_CODE) == 5001
    assert ans.find(base.DESTINATION_HOST) is None and ans.find(base.DESTINATION_REALM) is None
    failed = ans.find(base.FAILED_AVP)
    assert failed is not None and failed.children() == [Avp(99999, 0x40, 0, b"zz")]
    assert V.check_answer(decode_message(encode_message(ans))) is s13.ECR


def test_p_bit_not_set_when_request_lacks_it() -> None:
    req = ecr()
    req.flags = FLAG_REQUEST
    req.command = 999
    ans = error_answer(rejects(req), NODE, DICT, req)
    assert ans.flags == FLAG_ERROR


def test_error_answer_from_header_only() -> None:
    raw = bytearray(h(ECR_HEX))
    raw[0] = 2
    with pytest.raises(ProtocolError) as info:
        decode_message(bytes(raw))
    ans = error_answer(info.value, NODE, DICT)
    assert (ans.command, ans.hop_by_hop, ans.end_to_end) == (324, 0x11111111, 0x22222222)
    assert ans.get(base.RESULT_CODE) == 5011 and not ans.is_request


def test_5014_error_answer_zero_fills_failed_avp() -> None:
    raw = bytearray(h(ECR_HEX))
    raw[37:40] = (9).to_bytes(3, "big")  # Auth-Session-State claims 1 data octet: the stream stays aligned?
    try:
        msg = decode_message(bytes(raw))
    except ProtocolError as e:
        err = e
    else:
        err = rejects(msg)
    ans = error_answer(err, NODE, DICT)
    failed = ans.find(base.FAILED_AVP)
    assert ans.get(base.RESULT_CODE) == 5014 and failed is not None
    (member,) = failed.children()
    assert member.code == 277


def test_answers_with_malformed_failed_avp_still_validate() -> None:
    # §7.5: Failed-AVP carries the offending AVP as received (here a 3-octet Origin-State-Id).
    req = ecr()
    req.avps.append(Avp(278, 0x40, 0, b"\0\0\1"))
    ans = error_answer(rejects(req), NODE, DICT, req)
    assert ans.get(base.RESULT_CODE) == 5014
    assert V.check_answer(decode_message(encode_message(ans))) is s13.ECR
