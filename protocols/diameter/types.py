"""Value codecs for every AVP data format (RFC 6733 §4.2 basic, §4.3 derived).

``decode_value`` raises :class:`ValueError` with a reason for data of the wrong size or content;
the validator turns that into 5014 (wrong length) or 5004 (bad value) with the AVP as Failed-AVP.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .dictionary import AvpType
from .errors import EncodeError

__all__ = [
    "FIXED_SIZE",
    "NTP_EPOCH",
    "InvalidLength",
    "decode_value",
    "encode_value",
]

#: Data length of the fixed-size formats (§4.2): anything else is 5014 INVALID_AVP_LENGTH.
FIXED_SIZE: dict[AvpType, int] = {
    AvpType.INTEGER32: 4,
    AvpType.UNSIGNED32: 4,
    AvpType.ENUMERATED: 4,
    AvpType.FLOAT32: 4,
    AvpType.TIME: 4,
    AvpType.INTEGER64: 8,
    AvpType.UNSIGNED64: 8,
    AvpType.FLOAT64: 8,
}

#: Time is NTP seconds since 1900-01-01 00:00 UTC (§4.3.1, RFC 5905).
NTP_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)

_STRUCTS: dict[AvpType, struct.Struct] = {
    AvpType.INTEGER32: struct.Struct(">i"),
    AvpType.ENUMERATED: struct.Struct(">i"),
    AvpType.UNSIGNED32: struct.Struct(">I"),
    AvpType.INTEGER64: struct.Struct(">q"),
    AvpType.UNSIGNED64: struct.Struct(">Q"),
    AvpType.FLOAT32: struct.Struct(">f"),
    AvpType.FLOAT64: struct.Struct(">d"),
}

#: Address families used by the Address format (§4.3.1, IANA "Address Family Numbers").
AF_IPV4 = 1
AF_IPV6 = 2


class InvalidLength(ValueError):
    """The data length does not fit the AVP's format (answered with 5014)."""


def _decode_address(data: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address | tuple[int, bytes]:
    if len(data) < 2:
        raise InvalidLength("Address shorter than its 2-byte family")
    family = int.from_bytes(data[:2], "big")
    raw = data[2:]
    if family == AF_IPV4:
        if len(raw) != 4:
            raise InvalidLength(f"IPv4 Address with {len(raw)} octets")
        return ipaddress.IPv4Address(raw)
    if family == AF_IPV6:
        if len(raw) != 16:
            raise InvalidLength(f"IPv6 Address with {len(raw)} octets")
        return ipaddress.IPv6Address(raw)
    return (family, raw)


def _encode_address(value: Any) -> bytes:
    if isinstance(value, tuple):
        family, raw = value
        return int(family).to_bytes(2, "big") + bytes(raw)
    addr = value if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address) else ipaddress.ip_address(value)
    family = AF_IPV4 if addr.version == 4 else AF_IPV6
    return family.to_bytes(2, "big") + addr.packed


def _decode_time(data: bytes) -> datetime:
    if len(data) != 4:
        raise InvalidLength(f"Time with {len(data)} octets")
    return NTP_EPOCH + timedelta(seconds=int.from_bytes(data, "big"))


def _encode_time(value: Any) -> bytes:
    seconds = int((value - NTP_EPOCH).total_seconds()) if isinstance(value, datetime) else int(value)
    # §4.3.1: the 32-bit NTP seconds wrap in 2036; keep the low 32 bits as NTP era 1 does.
    return (seconds & 0xFFFFFFFF).to_bytes(4, "big")


def _decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8: {e.reason} at octet {e.start}") from None


def _decode_identity(data: bytes) -> str:
    # §4.3.1: DiameterIdentity is an FQDN or realm, ASCII/IDNA (RFC 5890).
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("DiameterIdentity is not ASCII") from None
    if not text:
        raise ValueError("empty DiameterIdentity")
    return text


def _encode_text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise EncodeError(f"expected str, got {type(value).__name__}")
    return value.encode("utf-8")


def decode_value(avp_type: AvpType, data: bytes) -> Any:
    """Decode the data of an AVP of ``avp_type``. Grouped data is returned as is (see ``Avp.children``)."""
    s = _STRUCTS.get(avp_type)
    if s is not None:
        if len(data) != s.size:
            raise InvalidLength(f"{avp_type.value} with {len(data)} octets, expected {s.size}")
        return s.unpack(data)[0]
    decoder = _DECODERS.get(avp_type)
    if decoder is None:
        return data
    return decoder(data)


def encode_value(avp_type: AvpType, value: Any) -> bytes:
    """Encode a Python value as the data of an AVP of ``avp_type`` (no header, no padding)."""
    s = _STRUCTS.get(avp_type)
    if s is not None:
        try:
            return s.pack(value)
        except struct.error as e:
            raise EncodeError(f"{avp_type.value} cannot hold {value!r}: {e}") from None
    encoder = _ENCODERS.get(avp_type)
    if encoder is None:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise EncodeError(f"{avp_type.value} needs bytes, got {type(value).__name__}")
    return encoder(value)


_DECODERS: dict[AvpType, Callable[[bytes], Any]] = {
    AvpType.ADDRESS: _decode_address,
    AvpType.TIME: _decode_time,
    AvpType.UTF8_STRING: _decode_utf8,
    AvpType.DIAMETER_IDENTITY: _decode_identity,
    AvpType.DIAMETER_URI: _decode_identity,
}

_ENCODERS: dict[AvpType, Callable[[Any], bytes]] = {
    AvpType.ADDRESS: _encode_address,
    AvpType.TIME: _encode_time,
    AvpType.UTF8_STRING: _encode_text,
    AvpType.DIAMETER_IDENTITY: _encode_text,
    AvpType.DIAMETER_URI: _encode_text,
}
