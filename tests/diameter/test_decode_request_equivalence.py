"""The server's one-pass ``Validator.decode_request`` must agree exactly with the careful path.

For every input, valid or not, it returns the same message or raises the same error (same class,
Result-Code and Failed-AVP) as ``decode_message`` followed by ``check_request``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.diameter import Avp, Dictionary, Message, Validator, decode_message, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.errors import DiameterError, ProtocolError
from protocols.diameter.message import FLAG_PROXIABLE, FLAG_REQUEST, decode_header

DICTIONARY = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
VALIDATOR = Validator(DICTIONARY, frozenset({s13.APPLICATION_ID}))


def ecr(imei: str = "35209900176148", *, extra: list[Avp] | None = None, user: str | None = "001010123456789") -> bytes:
    msg = Message(324, s13.APPLICATION_ID, FLAG_REQUEST | FLAG_PROXIABLE, 7, 9)
    msg.add(base.SESSION_ID, "mme.example;1;2").add(base.AUTH_SESSION_STATE, 1)
    msg.add(base.ORIGIN_HOST, "mme.example").add(base.ORIGIN_REALM, "example")
    msg.add(base.DESTINATION_REALM, "example")
    msg.add(s13.TERMINAL_INFORMATION, [Avp.new(s13.IMEI, imei), Avp.new(s13.SOFTWARE_VERSION, "12")])
    if user is not None:
        msg.add(base.USER_NAME, user)
    msg.avps.extend(extra or [])
    return encode_message(msg)


def outcome(fn: object, data: bytes) -> object:
    try:
        result = fn(data)  # type: ignore[operator]
    except ProtocolError as e:
        return ("protocol", e.result_code, e.failed_avp, e.header)
    except DiameterError as e:
        return ("diameter", type(e).__name__, str(e))
    except ValueError as e:  # decode_request refuses answers outright
        return ("value", str(e))
    msg = result[0] if isinstance(result, tuple) else result
    return ("ok", msg.command, msg.flags, msg.hop_by_hop, msg.end_to_end, [(a.code, a.flags, a.vendor, a.data)
                                                                          for a in msg.avps])


def careful(data: bytes) -> Message:
    header = decode_header(data)
    if header.version == 1 and header.length == len(data) and not header.is_request:
        raise ValueError("decode_request() was given an answer")
    msg = decode_message(data)
    if not msg.is_request:
        raise ValueError("decode_request() was given an answer")
    VALIDATOR.check_request(msg)
    return msg


def test_valid_ecr_decodes_the_same_both_ways() -> None:
    data = ecr()
    fast, _ = VALIDATOR.decode_request(data)
    assert outcome(VALIDATOR.decode_request, data) == outcome(careful, data)
    ti = fast.find(s13.TERMINAL_INFORMATION)
    assert ti is not None and ti.members is not None  # members were decoded once, by the fast path
    assert [a.code for a in ti.children()] == [1402, 1403]


def test_doubtful_but_valid_inputs_take_the_careful_path_and_pass() -> None:
    # Non-ASCII UTF-8, an unknown AVP without M, a repeated legal AVP: all valid.
    data = ecr(user="001010123456789", extra=[
        Avp(99999, 0, 0, b"ignored"), Avp.new(base.ROUTE_RECORD, "dra1.example"), Avp.new(base.ROUTE_RECORD, "dra2"),
    ])
    assert outcome(VALIDATOR.decode_request, data)[0] == "ok"
    assert outcome(VALIDATOR.decode_request, data) == outcome(careful, data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_ecrs_agree(data: st.DataObject) -> None:
    raw = bytearray(ecr(extra=data.draw(st.sampled_from([
        [], [Avp.new(base.ROUTE_RECORD, "dra")], [Avp(1, 0x40, 0, b"\xff\xfe")], [Avp(5, 0x40, 0, b"x")],
    ]))))
    for _ in range(data.draw(st.integers(0, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "truncate", "insert"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[i:]
            if not raw:
                raw = bytearray(b"\0")
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    blob = bytes(raw)
    assert outcome(VALIDATOR.decode_request, blob) == outcome(careful, blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=20, max_size=200))
def test_arbitrary_bytes_agree(blob: bytes) -> None:
    # Make most inputs look like an ECR header so they reach the AVP loop.
    head = bytes([1]) + len(blob).to_bytes(3, "big") + bytes([0xC0]) + (324).to_bytes(3, "big")
    head += s13.APPLICATION_ID.to_bytes(4, "big")
    for candidate in (blob, head + blob[12:]):
        if len(candidate) >= 4 and candidate[0] == 1:
            candidate = candidate[:1] + len(candidate).to_bytes(3, "big") + candidate[4:]
        assert outcome(VALIDATOR.decode_request, candidate) == outcome(careful, candidate)
