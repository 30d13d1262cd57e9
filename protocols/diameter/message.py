"""Diameter message and AVP codec (RFC 6733 §3 header, §4.1 AVP header).

Decoding keeps each AVP's data as bytes and decodes values only when asked (``Message.get``), so a
relay or a validator never pays for values it does not read. Encoding writes padding and lengths;
callers never hand-build bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .dictionary import AvpDef, AvpType
from .errors import FramingError, ProtocolError
from .types import decode_value, encode_value

__all__ = [
    "AVP_FLAG_MANDATORY",
    "AVP_FLAG_PROTECTED",
    "AVP_FLAG_VENDOR",
    "FLAG_ERROR",
    "FLAG_PROXIABLE",
    "FLAG_REQUEST",
    "FLAG_RETRANSMIT",
    "HEADER_SIZE",
    "VERSION",
    "Avp",
    "Header",
    "Message",
    "decode_avps",
    "decode_header",
    "decode_message",
    "encode_avp",
    "encode_message",
]

#: §3: the only Diameter version.
VERSION = 1
#: §3: Version(1) Length(3) Flags(1) Code(3) Application-ID(4) Hop-by-Hop(4) End-to-End(4).
HEADER_SIZE = 20
#: §3 command flags ``R P E T r r r r``.
FLAG_REQUEST = 0x80
FLAG_PROXIABLE = 0x40
FLAG_ERROR = 0x20
FLAG_RETRANSMIT = 0x10
#: §4.1 AVP flags ``V M P r r r r r``.
AVP_FLAG_VENDOR = 0x80
AVP_FLAG_MANDATORY = 0x40
AVP_FLAG_PROTECTED = 0x20

_HEADER = struct.Struct(">IIIII")
_U32 = struct.Struct(">I")
_AVP8 = struct.Struct(">II")
_AVP12 = struct.Struct(">III")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 20-byte message header (§3)."""

    version: int
    length: int
    flags: int
    command: int
    application: int
    hop_by_hop: int
    end_to_end: int

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)


@dataclass(slots=True)
class Avp:
    """One AVP: code, flags, vendor (0 when the V bit is clear) and its unpadded data (§4.1).

    Grouped AVPs keep their encoded members in ``data``; ``children()`` decodes them.
    """

    code: int
    flags: int
    vendor: int
    data: bytes
    #: Decoded members of a Grouped AVP, cached by ``children()`` (not part of equality).
    members: list[Avp] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def new(cls, defn: AvpDef, value: Any, *, flags: int | None = None) -> Avp:
        """Build an AVP from its definition; Grouped values are iterables of :class:`Avp`."""
        if defn.type is AvpType.GROUPED:
            data = b"".join(encode_avp(child) for child in value)
        else:
            data = encode_value(defn.type, value)
        return cls(defn.code, defn.default_flags if flags is None else flags, defn.vendor, data)

    @property
    def key(self) -> tuple[int, int]:
        return (self.code, self.vendor)

    @property
    def is_mandatory(self) -> bool:
        return bool(self.flags & AVP_FLAG_MANDATORY)

    def value(self, defn: AvpDef) -> Any:
        """The decoded value, per ``defn``'s data type (ValueError on bad data)."""
        return decode_value(defn.type, self.data)

    def children(self) -> list[Avp]:
        """Members of a Grouped AVP (§4.4), decoded once; a broken member raises ProtocolError 5014."""
        members = self.members
        if members is None:
            members = self.members = _decode_avps(self.data, 0, len(self.data), None)
        return members

    def find(self, defn: AvpDef) -> Avp | None:
        """First member of a Grouped AVP matching ``defn``."""
        key = defn.key
        for child in self.children():
            if child.code == key[0] and child.vendor == key[1]:
                return child
        return None


@dataclass(slots=True)
class Message:
    """A Diameter message: header fields and the top-level AVPs in wire order."""

    command: int
    application: int
    flags: int
    hop_by_hop: int = 0
    end_to_end: int = 0
    avps: list[Avp] = field(default_factory=list)

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & FLAG_PROXIABLE)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def is_retransmit(self) -> bool:
        return bool(self.flags & FLAG_RETRANSMIT)

    @property
    def header(self) -> Header:
        return Header(VERSION, 0, self.flags, self.command, self.application, self.hop_by_hop, self.end_to_end)

    def find(self, defn: AvpDef) -> Avp | None:
        """First top-level AVP matching ``defn`` (code and vendor)."""
        code, vendor = defn.code, defn.vendor
        for avp in self.avps:
            if avp.code == code and avp.vendor == vendor:
                return avp
        return None

    def find_all(self, defn: AvpDef) -> list[Avp]:
        code, vendor = defn.code, defn.vendor
        return [a for a in self.avps if a.code == code and a.vendor == vendor]

    def get(self, defn: AvpDef, default: Any = None) -> Any:
        """Decoded value of the first AVP matching ``defn``, or ``default``."""
        avp = self.find(defn)
        return default if avp is None else decode_value(defn.type, avp.data)

    def get_all(self, defn: AvpDef) -> list[Any]:
        return [decode_value(defn.type, a.data) for a in self.find_all(defn)]

    def add(self, defn: AvpDef, value: Any) -> Message:
        """Append an AVP built from ``defn`` and ``value``; returns self for chaining."""
        self.avps.append(Avp.new(defn, value))
        return self

    def __iter__(self) -> Iterator[Avp]:
        return iter(self.avps)


def encode_avp(avp: Avp) -> bytes:
    """AVP header, data and zero padding to a 4-octet boundary (§4.1; Length excludes padding)."""
    data = avp.data
    if avp.vendor:
        head = _AVP12.pack(avp.code, ((avp.flags | AVP_FLAG_VENDOR) << 24) | (12 + len(data)), avp.vendor)
    else:
        head = _AVP8.pack(avp.code, ((avp.flags & ~AVP_FLAG_VENDOR) << 24) | (8 + len(data)))
    return head + data + _PAD[len(data) & 3]


def encode_message(msg: Message, avps: Iterable[bytes] = ()) -> bytes:
    """Encode ``msg``; ``avps`` are extra pre-encoded AVPs appended after ``msg.avps``."""
    body = b"".join([*(encode_avp(a) for a in msg.avps), *avps])
    length = HEADER_SIZE + len(body)
    return (
        _HEADER.pack(
            (VERSION << 24) | length,
            (msg.flags << 24) | msg.command,
            msg.application,
            msg.hop_by_hop,
            msg.end_to_end,
        )
        + body
    )


def decode_header(data: bytes) -> Header:
    """Decode the first 20 octets; FramingError when the length cannot be trusted."""
    if len(data) < HEADER_SIZE:
        raise FramingError(f"{len(data)} octets is shorter than the {HEADER_SIZE}-octet header")
    vl, fc, app, hbh, e2e = _HEADER.unpack_from(data)
    length = vl & 0xFFFFFF
    if length < HEADER_SIZE or length & 3:
        raise FramingError(f"message length {length} is not a multiple of 4 of at least {HEADER_SIZE}")
    return Header(vl >> 24, length, fc >> 24, fc & 0xFFFFFF, app, hbh, e2e)


def decode_avps(data: bytes, start: int = 0, end: int | None = None) -> list[Avp]:
    """Decode a sequence of AVPs from ``data[start:end]``; bad lengths raise ProtocolError 5014.

    The Failed-AVP of a length error holds the offending AVP header with no data; the answer builder
    zero-fills it to the minimum size of the AVP's type (§7.5, DIAMETER_INVALID_AVP_LENGTH).
    """
    return _decode_avps(data, start, len(data) if end is None else end, None)


def _length_error(msg: Message | None, text: str, failed: Avp | None) -> ProtocolError:
    return ProtocolError(5014, text, failed_avp=failed, header=None if msg is None else msg.header)


def _decode_avps(data: bytes, pos: int, end: int, msg: Message | None) -> list[Avp]:
    avps: list[Avp] = []
    append = avps.append
    unpack8 = _AVP8.unpack_from
    unpack4 = _U32.unpack_from
    while pos < end:
        if end - pos < 8:
            code = int.from_bytes(data[pos:end].ljust(4, b"\0")[:4], "big")
            text = f"{end - pos} trailing octets are shorter than an AVP header"
            raise _length_error(msg, text, Avp(code, 0, 0, b""))
        code, fl = unpack8(data, pos)
        length = fl & 0xFFFFFF
        last = pos + length
        if fl & 0x80000000:
            if length < 12 or last > end:
                raise _length_error(msg, f"AVP {code} length {length} does not fit", Avp(code, fl >> 24, 0, b""))
            append(Avp(code, fl >> 24, unpack4(data, pos + 8)[0], data[pos + 12 : last]))
        else:
            if length < 8 or last > end:
                raise _length_error(msg, f"AVP {code} length {length} does not fit", Avp(code, fl >> 24, 0, b""))
            append(Avp(code, fl >> 24, 0, data[pos + 8 : last]))
        pos = last + (-length & 3)
    if pos > end:
        raise _length_error(msg, "the last AVP's padding runs past the end of its container", None)
    return avps


def decode_message(data: bytes) -> Message:
    """Decode one complete message (as cut by the framer).

    Raises FramingError for an untrustworthy length, and ProtocolError for a bad version (5011), a
    length that disagrees with the data (5015) or an AVP whose length is wrong (5014).
    """
    if len(data) < HEADER_SIZE:
        raise FramingError(f"{len(data)} octets is shorter than the {HEADER_SIZE}-octet header")
    vl, fc, app, hbh, e2e = _HEADER.unpack_from(data)
    length = vl & 0xFFFFFF
    if vl >> 24 != VERSION or length != len(data) or length & 3:
        header = decode_header(data)
        if header.version != VERSION:
            raise ProtocolError(5011, f"version {header.version} is not supported", header=header)
        raise ProtocolError(5015, f"header says {header.length} octets, message has {len(data)}", header=header)
    msg = Message(fc & 0xFFFFFF, app, fc >> 24, hbh, e2e)
    msg.avps = _decode_avps(data, HEADER_SIZE, length, msg)
    return msg
