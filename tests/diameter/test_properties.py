"""Hypothesis round trips (values, messages, framer) and fuzzing that only typed errors escape."""

from __future__ import annotations

import contextlib
import ipaddress
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.diameter import Dictionary
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.dictionary import AvpType
from protocols.diameter.errors import DiameterError, FramingError
from protocols.diameter.framer import Framer
from protocols.diameter.message import Avp, Message, decode_message, encode_avp, encode_message
from protocols.diameter.types import NTP_EPOCH, decode_value, encode_value
from protocols.diameter.validate import Validator

from .test_golden import ECR_HEX, ecr, h

DICT = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
VALIDATOR = Validator(DICT, frozenset({s13.APPLICATION_ID}))
FAST = settings(max_examples=150, deadline=None)

T = AvpType
VALUES: dict[AvpType, st.SearchStrategy[object]] = {
    T.INTEGER32: st.integers(-(2**31), 2**31 - 1),
    T.INTEGER64: st.integers(-(2**63), 2**63 - 1),
    T.UNSIGNED32: st.integers(0, 2**32 - 1),
    T.UNSIGNED64: st.integers(0, 2**64 - 1),
    T.ENUMERATED: st.integers(-(2**31), 2**31 - 1),
    T.FLOAT32: st.floats(width=32, allow_nan=False),
    T.FLOAT64: st.floats(allow_nan=False),
    T.ADDRESS: st.ip_addresses(),
    T.TIME: st.integers(0, 2**32 - 1).map(lambda s: NTP_EPOCH + timedelta(seconds=s)),
    T.UTF8_STRING: st.text(),
    T.DIAMETER_IDENTITY: st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    T.DIAMETER_URI: st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    T.OCTET_STRING: st.binary(),
}


@pytest.mark.parametrize("avp_type", list(VALUES), ids=lambda t: t.value)
@FAST
@given(data=st.data())
def test_value_round_trip(avp_type: AvpType, data: st.DataObject) -> None:
    value = data.draw(VALUES[avp_type])
    assert decode_value(avp_type, encode_value(avp_type, value)) == value


def test_float_nan_round_trips_as_nan() -> None:
    assert math.isnan(decode_value(T.FLOAT64, encode_value(T.FLOAT64, float("nan"))))
    assert encode_value(T.FLOAT32, float("nan"))[:2] in (b"\x7f\xc0", b"\xff\xc0")


def test_time_of_1900_and_address_types() -> None:
    assert decode_value(T.TIME, b"\0\0\0\0") == datetime(1900, 1, 1, tzinfo=UTC)
    assert isinstance(decode_value(T.ADDRESS, encode_value(T.ADDRESS, "::1")), ipaddress.IPv6Address)


# --- whole messages ----------------------------------------------------------------------------------
def _leaf() -> st.SearchStrategy[Avp]:
    return st.builds(
        lambda code, flags, vendor, data: Avp(code, (flags | 0x80) if vendor else (flags & 0x7F), vendor, data),
        st.integers(0, 2**32 - 1), st.integers(0, 255), st.sampled_from([0, 0, 10415, 2**32 - 1]),
        st.binary(max_size=24),
    )


def _grouped(children: st.SearchStrategy[list[Avp]]) -> st.SearchStrategy[Avp]:
    return st.builds(
        lambda code, vendor, kids: Avp(code, 0xC0 if vendor else 0x40, vendor, b"".join(encode_avp(k) for k in kids)),
        st.integers(0, 2**32 - 1), st.sampled_from([0, 10415]), children,
    )


AVP_TREES = st.recursive(_leaf(), lambda inner: _grouped(st.lists(inner, max_size=4)), max_leaves=12)
MESSAGES = st.builds(
    Message,
    st.integers(0, 2**24 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.lists(AVP_TREES, max_size=6),
)


@FAST
@given(msg=MESSAGES)
def test_message_round_trip(msg: Message) -> None:
    raw = encode_message(msg)
    assert len(raw) % 4 == 0
    out = decode_message(raw)
    assert out == msg
    assert encode_message(out) == raw


@FAST
@given(kids=st.lists(_leaf(), max_size=5))
def test_grouped_children_round_trip(kids: list[Avp]) -> None:
    group = Avp(1, 0x40, 0, b"".join(encode_avp(k) for k in kids))
    (out,) = decode_message(encode_message(Message(1, 0, 0, avps=[group]))).avps
    assert out.children() == kids


# --- framer ------------------------------------------------------------------------------------------
@FAST
@given(msgs=st.lists(MESSAGES, min_size=1, max_size=5), data=st.data())
def test_framer_reassembles_any_split(msgs: list[Message], data: st.DataObject) -> None:
    raws = [encode_message(m) for m in msgs]
    stream = b"".join(raws)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    framer = Framer()
    out: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += framer.feed(stream[prev:cut])
        prev = cut
    assert out == raws
    assert framer.buffered == 0


@pytest.mark.parametrize("length", [0, 4, 19, 21, 22, 23, 102])
def test_framer_rejects_bad_lengths(length: int) -> None:
    with pytest.raises(FramingError):
        Framer().feed(bytes([1]) + length.to_bytes(3, "big") + bytes(16))


def test_framer_rejects_oversized_message_before_it_arrives() -> None:
    with pytest.raises(FramingError, match="exceeds"):
        Framer(max_length=1024).feed(b"\x01\x00\x08\x00")


def test_framer_rejects_bad_length_after_a_partial_read() -> None:
    framer = Framer()
    assert framer.feed(b"\x01") == []
    with pytest.raises(FramingError):
        framer.feed(b"\x00\x00\x11" + bytes(16))


# --- fuzz: only DiameterError subclasses may escape ----------------------------------------------------
def _digest(data: bytes) -> None:
    """Everything a server does with received bytes, from framing to validation and reading values."""
    with contextlib.suppress(DiameterError):
        Framer().feed(data)
    try:
        msg = decode_message(data)
    except DiameterError:
        return
    try:
        if msg.is_request:
            VALIDATOR.check_request(msg)
        else:
            VALIDATOR.check_answer(msg)
    except DiameterError:
        pass
    if msg.is_request:
        with contextlib.suppress(DiameterError):
            VALIDATOR.decode_request(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_typed_errors(data: bytes) -> None:
    _digest(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=16, max_size=160).map(
    lambda b: b"\x01" + (20 + len(b) // 4 * 4).to_bytes(3, "big") + b"\xc0\x00\x01\x44\x01\x00\x00\x24" + bytes(8)
    + b[: len(b) // 4 * 4]
))
def test_arbitrary_ecr_bodies_raise_only_typed_errors(data: bytes) -> None:
    _digest(data)


VALID_ECR = h(ECR_HEX)


@settings(max_examples=400, deadline=None)
@given(bits=st.lists(st.integers(0, len(VALID_ECR) * 8 - 1), min_size=1, max_size=4))
def test_bit_flipped_ecr_raises_only_typed_errors(bits: list[int]) -> None:
    raw = bytearray(VALID_ECR)
    for bit in bits:
        raw[bit // 8] ^= 0x80 >> (bit % 8)
    _digest(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, len(VALID_ECR) - 1))
def test_truncated_ecr_raises_only_typed_errors(cut: int) -> None:
    with pytest.raises(DiameterError):
        decode_message(VALID_ECR[:cut])
    _digest(VALID_ECR[:cut])


AVP_LENGTH_OFFSETS = [25, 37, 49, 61, 77, 89, 101, 129]  # the 3-octet Length of each AVP in ECR_HEX


@settings(max_examples=300, deadline=None)
@given(offset=st.sampled_from([1, *AVP_LENGTH_OFFSETS]), length=st.integers(0, 2**24 - 1))
def test_length_field_edits_raise_only_typed_errors(offset: int, length: int) -> None:
    raw = bytearray(VALID_ECR)
    raw[offset : offset + 3] = length.to_bytes(3, "big")
    _digest(bytes(raw))


def test_avp_length_offsets_point_at_lengths() -> None:
    flags = [a.flags for a in ecr().avps] + [0xC0, 0xC0]  # + IMEI and Software-Version
    assert [VALID_ECR[o - 1] for o in AVP_LENGTH_OFFSETS] == flags
