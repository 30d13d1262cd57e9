"""Cross-decoding with python-diameter 0.9.0, an independent Diameter implementation.

It decodes what we encode, and we decode what it encodes, for CER/CEA, DWR/DWA, DPR/DPA, ECR/ECA and
error answers; field values are compared, not just the absence of an exception.
"""

from __future__ import annotations

import ipaddress

import pytest
from diameter.message import Message as PdMessage
from diameter.message.avp.grouped import ExperimentalResult, VendorSpecificApplicationId
from diameter.message.commands import (
    CapabilitiesExchangeAnswer,
    CapabilitiesExchangeRequest,
    DeviceWatchdogAnswer,
    DeviceWatchdogRequest,
    DisconnectPeerAnswer,
    DisconnectPeerRequest,
    MeIdentityCheckAnswer,
    MeIdentityCheckRequest,
)
from diameter.message.commands.me_identity_check import TerminalInformation

from protocols.diameter import Dictionary
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.answers import LocalNode, error_answer
from protocols.diameter.errors import ProtocolError
from protocols.diameter.message import (
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    Avp,
    Message,
    decode_message,
    encode_message,
)
from protocols.diameter.validate import Validator

from ..diameter.test_golden import cea, cer, eca, ecr

pytestmark = pytest.mark.interop

DICT = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
V = Validator(DICT, frozenset({s13.APPLICATION_ID}))
NODE = LocalNode("eir.example.org", "example.org")


def theirs(msg: Message) -> PdMessage:
    return PdMessage.from_bytes(encode_message(msg))


# --- they decode ours -------------------------------------------------------------------------------
def test_they_decode_our_ecr() -> None:
    out = theirs(ecr())
    assert isinstance(out, MeIdentityCheckRequest)
    assert out.header.is_request and out.header.is_proxyable
    assert out.header.application_id == s13.APPLICATION_ID
    assert (out.header.hop_by_hop_identifier, out.header.end_to_end_identifier) == (0x11111111, 0x22222222)
    assert out.session_id == "s;1"
    assert out.origin_host == b"mme" and out.destination_realm == b"eir"
    assert out.auth_session_state == 1
    assert out.terminal_information.imei == "35209900176148"
    assert out.terminal_information.software_version == "12"


def test_they_decode_our_eca() -> None:
    out = theirs(eca())
    assert isinstance(out, MeIdentityCheckAnswer)
    assert not out.header.is_request
    assert out.result_code == 2001 and out.equipment_status == 1 and out.origin_host == b"eir"


def test_they_decode_our_cer_and_cea() -> None:
    req = theirs(cer())
    assert isinstance(req, CapabilitiesExchangeRequest) and not req.header.is_proxyable
    assert req.host_ip_address == [(1, "127.0.0.1")]  # (address family, text)
    assert req.product_name == "eirlab" and req.vendor_id == 0
    assert req.auth_application_id == [s13.APPLICATION_ID] or req.auth_application_id == s13.APPLICATION_ID
    vsai = req.vendor_specific_application_id
    vsai = vsai[0] if isinstance(vsai, list) else vsai
    assert (vsai.vendor_id, vsai.auth_application_id) == (10415, s13.APPLICATION_ID)
    ans = theirs(cea())
    assert isinstance(ans, CapabilitiesExchangeAnswer) and ans.result_code == 2001
    assert ans.host_ip_address == [(2, "::1")]


@pytest.mark.parametrize(("command", "req_cls", "ans_cls"), [
    (280, DeviceWatchdogRequest, DeviceWatchdogAnswer),
    (282, DisconnectPeerRequest, DisconnectPeerAnswer),
])
def test_they_decode_our_dwr_dpr(command: int, req_cls: type, ans_cls: type) -> None:
    req = Message(command, 0, FLAG_REQUEST, 7, 8).add(base.ORIGIN_HOST, "mme").add(base.ORIGIN_REALM, "r")
    if command == 282:
        req.add(base.DISCONNECT_CAUSE, 2)
    out = theirs(req)
    assert isinstance(out, req_cls) and out.origin_host == b"mme" and out.header.hop_by_hop_identifier == 7
    if command == 282:
        assert out.disconnect_cause == 2
    ans = Message(command, 0, 0, 7, 8).add(base.RESULT_CODE, 2001)
    ans.avps += NODE.origin_avps
    out_ans = theirs(ans)
    assert isinstance(out_ans, ans_cls) and out_ans.result_code == 2001
    assert out_ans.origin_realm == b"example.org"


def test_they_decode_our_protocol_error_answer() -> None:
    req = ecr()
    req.command = 999
    with pytest.raises(ProtocolError) as info:
        V.check_request(req)
    req.command = 324  # so that they can type the answer
    ans = error_answer(ProtocolError(3008, "x", header=req.header), NODE, DICT, req)
    out = theirs(ans)
    assert out.header.is_error and not out.header.is_request
    assert out.result_code == 3008 and out.session_id == "s;1"
    assert info.value.result_code == 3001


def test_they_decode_our_failed_avp() -> None:
    req = ecr()
    del req.avps[1]  # Auth-Session-State missing
    with pytest.raises(ProtocolError) as info:
        V.check_request(req)
    out = theirs(error_answer(info.value, NODE, DICT, req))
    assert isinstance(out, MeIdentityCheckAnswer) and not out.header.is_error
    assert out.result_code == 5005
    (group,) = out.failed_avp
    (failed,) = group.additional_avps
    assert (failed.code, failed.payload) == (277, bytes(4))


# --- we decode theirs -------------------------------------------------------------------------------
def their_ecr() -> MeIdentityCheckRequest:
    r = MeIdentityCheckRequest()
    r.header.application_id = s13.APPLICATION_ID
    r.header.hop_by_hop_identifier = 0xABCDEF01
    r.header.end_to_end_identifier = 0x01020304
    r.session_id = "mme;1;2"
    r.auth_session_state = 1
    r.origin_host = b"mme.example.org"
    r.origin_realm = b"example.org"
    r.destination_realm = b"example.org"
    r.terminal_information = TerminalInformation(imei="49015420323751", software_version="07")
    r.user_name = "001010123456789"
    return r


def test_we_decode_their_ecr() -> None:
    msg = decode_message(their_ecr().as_bytes())
    assert V.check_request(msg) is s13.ECR
    assert msg.flags == FLAG_REQUEST | FLAG_PROXIABLE
    assert (msg.hop_by_hop, msg.end_to_end) == (0xABCDEF01, 0x01020304)
    assert msg.get(base.SESSION_ID) == "mme;1;2" and msg.get(base.USER_NAME) == "001010123456789"
    info = msg.find(s13.TERMINAL_INFORMATION)
    assert info is not None
    assert info.find(s13.IMEI).value(s13.IMEI) == "49015420323751"  # type: ignore[union-attr]
    assert info.find(s13.SOFTWARE_VERSION).value(s13.SOFTWARE_VERSION) == "07"  # type: ignore[union-attr]


def test_we_decode_their_eca_with_experimental_result() -> None:
    a = MeIdentityCheckAnswer()
    a.header.application_id = s13.APPLICATION_ID
    a.header.hop_by_hop_identifier = 5
    a.session_id = "mme;1;2"
    a.auth_session_state = 1
    a.origin_host = b"eir"
    a.origin_realm = b"example.org"
    a.experimental_result = ExperimentalResult(vendor_id=10415, experimental_result_code=5422)
    msg = decode_message(a.as_bytes())
    assert V.check_answer(msg) is s13.ECR
    exp = msg.find(base.EXPERIMENTAL_RESULT)
    assert exp is not None
    assert exp.find(base.EXPERIMENTAL_RESULT_CODE).value(base.EXPERIMENTAL_RESULT_CODE) == 5422  # type: ignore[union-attr]
    assert exp.find(base.VENDOR_ID).value(base.VENDOR_ID) == 10415  # type: ignore[union-attr]


def test_we_decode_their_eca_with_equipment_status() -> None:
    a = their_ecr().to_answer()
    a.session_id = "mme;1;2"
    a.result_code = 2001
    a.auth_session_state = 1
    a.origin_host = b"eir"
    a.origin_realm = b"example.org"
    a.equipment_status = 2
    msg = decode_message(a.as_bytes())
    assert V.check_answer(msg) is s13.ECR
    assert not msg.is_request and msg.hop_by_hop == 0xABCDEF01
    assert msg.get(s13.EQUIPMENT_STATUS) == s13.EquipmentStatus.GREYLISTED
    assert msg.get(base.RESULT_CODE) == 2001


def test_we_decode_their_cer_cea_dwr_dwa_dpr_dpa() -> None:
    c = CapabilitiesExchangeRequest()
    c.origin_host = b"mme"
    c.origin_realm = b"r"
    c.host_ip_address = "127.0.0.1"
    c.vendor_id = 10415
    c.product_name = "pd"
    c.auth_application_id = s13.APPLICATION_ID
    c.vendor_specific_application_id = VendorSpecificApplicationId(vendor_id=10415,
                                                                   auth_application_id=s13.APPLICATION_ID)
    msg = decode_message(c.as_bytes())
    assert V.check_request(msg) is base.CER
    assert msg.get(base.HOST_IP_ADDRESS) == ipaddress.IPv4Address("127.0.0.1")
    assert msg.get(base.PRODUCT_NAME) == "pd" and msg.get(base.AUTH_APPLICATION_ID) == s13.APPLICATION_ID
    ca = c.to_answer()
    ca.result_code = 2001
    ca.origin_host = b"eir"
    ca.origin_realm = b"r"
    ca.host_ip_address = "::1"
    ca.vendor_id = 0
    ca.product_name = "pd"
    out = decode_message(ca.as_bytes())
    assert V.check_answer(out) is base.CER
    assert out.get(base.HOST_IP_ADDRESS) == ipaddress.IPv6Address("::1")
    for req_cls in (DeviceWatchdogRequest, DisconnectPeerRequest):
        r = req_cls()
        r.origin_host = b"mme"
        r.origin_realm = b"r"
        if req_cls is DisconnectPeerRequest:
            r.disconnect_cause = 1
        m = decode_message(r.as_bytes())
        assert V.check_request(m).code == r.header.command_code
        assert m.get(base.ORIGIN_HOST) == "mme"
        ans = r.to_answer()
        ans.result_code = 2001
        ans.origin_host = b"eir"
        ans.origin_realm = b"r"
        m = decode_message(ans.as_bytes())
        assert V.check_answer(m) is not None and m.get(base.RESULT_CODE) == 2001


def test_we_decode_their_error_answer() -> None:
    a = their_ecr().to_answer()
    a.header.is_error = True
    a.session_id = "mme;1;2"
    a.result_code = 3002
    a.origin_host = b"dra"
    a.origin_realm = b"example.org"
    msg = decode_message(a.as_bytes())
    assert msg.is_error and not msg.is_request
    assert V.check_answer(msg) is s13.ECR  # E bit: §7.2 answer-message, no Auth-Session-State needed
    assert msg.get(base.RESULT_CODE) == 3002
    assert Avp.new(base.SESSION_ID, "mme;1;2") == msg.avps[0]
