"""The server's one-pass ``Validator.decode_request`` must agree exactly with the careful path.

For every input, valid or not, it returns the same message or raises the same error (same class,
Result-Code and Failed-AVP) as ``decode_message`` followed by ``check_request``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.diameter import Avp, Dictionary, Message, Validator, decode_message, encode_avp, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.errors import DiameterError, ProtocolError
from protocols.diameter.layout import COMPILE_AFTER
from protocols.diameter.message import FLAG_PROXIABLE, FLAG_REQUEST, decode_header
from protocols.diameter.validate import LAYOUTS_PER_LENGTH, MAX_LAYOUTS

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


# ---- known layouts: a request shaped like one accepted before is cut by its layout (protocols/diameter/layout.py)
def ecr_of(sid: bytes, state: int, imei: bytes, svn: bytes, user: bytes, *, ti_flags: int = 0xC0) -> bytes:
    """An ECR with any bytes in its values (and any Auth-Session-State), the structure fixed by the lengths."""
    msg = Message(324, s13.APPLICATION_ID, FLAG_REQUEST | FLAG_PROXIABLE, 7, 9, [
        Avp(base.SESSION_ID.code, 0x40, 0, sid),
        Avp(base.AUTH_SESSION_STATE.code, 0x40, 0, (state & 0xFFFFFFFF).to_bytes(4, "big")),
        Avp.new(base.ORIGIN_HOST, "mme.example"), Avp.new(base.ORIGIN_REALM, "example"),
        Avp.new(base.DESTINATION_REALM, "example"),
        Avp(s13.TERMINAL_INFORMATION.code, ti_flags, s13.VENDOR_3GPP, b"".join([
            encode_avp(Avp(s13.IMEI.code, 0xC0, s13.VENDOR_3GPP, imei)),
            encode_avp(Avp(s13.SOFTWARE_VERSION.code, 0xC0, s13.VENDOR_3GPP, svn)),
        ])),
        Avp(base.USER_NAME.code, 0x40, 0, user),
    ])
    return encode_message(msg)


def primed() -> Validator:
    """A fresh validator that has accepted one ECR of each length used below (so it knows their layouts)."""
    v = Validator(DICTIONARY, frozenset({s13.APPLICATION_ID}))
    for n in (1, 2, 3, 4):
        v.decode_request(ecr_of(b"s" * 12 * n, 1, b"3" * 15, b"12", b"0" * 15))
    return v


def test_a_known_layout_gives_the_new_values(monkeypatch: pytest.MonkeyPatch) -> None:
    v = primed()
    data = ecr_of(b"mme;1;2;abcd", 1, b"352099001761481", b"07", b"001010123456789")

    def no_fast_path(*_: object) -> None:
        raise AssertionError("the known layout was not used")

    monkeypatch.setattr(Validator, "_fast", no_fast_path)
    assert outcome(lambda d: v.decode_request(d), data) == outcome(careful, data)
    msg, _ = v.decode_request(data)
    ti = msg.find(s13.TERMINAL_INFORMATION)
    assert ti is not None and ti.members is not None
    assert [(a.code, a.data) for a in ti.members] == [(1402, b"352099001761481"), (1403, b"07")]
    assert ti.members == ti.children() == decode_message(data).find(s13.TERMINAL_INFORMATION).children()  # type: ignore[union-attr]


def test_a_known_layout_rebuilds_nested_groups_as_the_careful_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grouped AVPs after the Grouped Terminal-Information, and AVPs after them, come back with the new values
    and their members, as the careful path decodes them: by the loop (:func:`layout._rebuild`) while the layout
    is new, and by the generated function once it has matched ``COMPILE_AFTER`` times."""
    def relayed(n: int) -> bytes:
        proxy = [Avp.new(base.PROXY_HOST, f"dra{n % 10}.example"), Avp.new(base.PROXY_STATE, n.to_bytes(2, "big"))]
        return ecr(extra=[Avp.new(base.PROXY_INFO, proxy), Avp.new(base.ROUTE_RECORD, f"dra{n % 10}.example"),
                          Avp.new(base.PROXY_INFO, proxy[::-1])])

    v = Validator(DICTIONARY, frozenset({s13.APPLICATION_ID}))
    v.decode_request(relayed(0))  # learns the layout

    def no_fast_path(*_: object) -> None:
        raise AssertionError("the known layout was not used")

    monkeypatch.setattr(Validator, "_fast", no_fast_path)
    for n in range(1, COMPILE_AFTER + 3):
        data = relayed(n)
        assert outcome(lambda d: v.decode_request(d), data) == outcome(careful, data)
        msg, _ = v.decode_request(data)
        proxies = msg.find_all(base.PROXY_INFO)
        assert [p.members for p in proxies] == [p.children() for p in decode_message(data).find_all(base.PROXY_INFO)]
        assert [m.data for m in proxies[1].members or ()] == [n.to_bytes(2, "big"), f"dra{n % 10}.example".encode()]
    (layout,) = [x for by_length in v._layouts.values() for same in by_length.values() for x in same]
    assert layout._compiled is not None


@settings(max_examples=300, deadline=None)
@given(
    sid=st.sampled_from([12, 24, 36, 48]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    state=st.sampled_from([0, 1, 2, 3, -1, 7]),
    imei=st.binary(min_size=15, max_size=15) | st.just("3520990017614é".encode()),
    svn=st.binary(min_size=2, max_size=2),
    user=st.binary(min_size=15, max_size=15),
    ti_flags=st.sampled_from([0xC0, 0x80]),
)
def test_values_in_a_known_layout_are_judged_as_in_full(sid: bytes, state: int, imei: bytes, svn: bytes,
                                                       user: bytes, ti_flags: int) -> None:
    # Non-ASCII or broken UTF-8 text, undefined enumerated values, other flags: the layout must give them
    # up to the full checks, which answer exactly as the careful path.
    v = primed()
    data = ecr_of(sid, state, imei, svn, user, ti_flags=ti_flags)
    assert outcome(lambda d: v.decode_request(d), data) == outcome(careful, data)


def test_layouts_are_bounded() -> None:
    v = Validator(DICTIONARY, frozenset({s13.APPLICATION_ID}))
    for n in range(200):
        v.decode_request(ecr_of(b"s" * (4 + 4 * n), 1, b"3" * 15, b"12", b"0" * 15))
    assert all(len(by_length) == MAX_LAYOUTS for by_length in v._layouts.values())
    off = Validator(DICTIONARY, frozenset({s13.APPLICATION_ID}), max_layouts=0)
    off.decode_request(ecr_of(b"s" * 12, 1, b"3" * 15, b"12", b"0" * 15))
    assert not off._layouts


def test_requests_of_one_length_and_other_avps_each_keep_their_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two peers whose ECRs have the same length and different AVPs (here: one User-Name longer, the
    # Session-Id shorter by as much) must not replace each other's layout on every request.
    v = Validator(DICTIONARY, frozenset({s13.APPLICATION_ID}))
    a = ecr_of(b"s" * 16, 1, b"3" * 15, b"12", b"0" * 11)
    b = ecr_of(b"s" * 12, 1, b"3" * 15, b"12", b"0" * 15)
    assert len(a) == len(b) and a != b
    v.decode_request(a)
    v.decode_request(b)

    def no_fast_path(*_: object) -> None:
        raise AssertionError("a known layout was not used")

    monkeypatch.setattr(Validator, "_fast", no_fast_path)
    for data in (a, b, a, b):
        assert outcome(lambda d: v.decode_request(d), data) == outcome(careful, data)
    monkeypatch.undo()
    for n in range(LAYOUTS_PER_LENGTH + 3):  # more shapes of that length: the newest are kept, no more
        v.decode_request(ecr_of(b"s" * (16 - 4 * (n % 4)), 1, b"3" * (15 - n % 3), b"12", b"0" * 15))
    assert all(len(same) <= LAYOUTS_PER_LENGTH for by_length in v._layouts.values() for same in by_length.values())
