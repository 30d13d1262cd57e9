"""Known message layouts: decoding a request shaped like one already validated, in a few C calls.

A peer sends the same request again and again with new values in the same places: an MME's ECRs
differ in Session-Id, IMEI and Software-Version, rarely in which AVPs they carry, their flags or
their lengths. Every check of RFC 6733 §4 and of a command's grammar (§3.2: which AVPs, how often,
in which fixed positions, fixed-size data lengths, M bits of unknown AVPs, Grouped contents) is a
function of that structure, except for three that depend on the data itself: text must be valid
(ASCII here; the validator's careful path judges the rest), an Enumerated value must be defined,
a DiameterIdentity must not be empty (its length, so structure too).

A :class:`Layout` is that structure, taken from a message the validator has accepted: one
``struct`` format that cuts every AVP header and every value out of a message of the same length
in one call, the header bytes expected, and the few data checks. :meth:`Layout.match` answers the
decoded AVPs, or None as soon as anything differs (the validator then judges the message in full).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from .message import _AVP8, _AVP12, AVP_FLAG_VENDOR, Avp

__all__ = ["Layout", "LayoutAvp"]


@dataclass(frozen=True, slots=True)
class LayoutAvp:
    """One AVP of an accepted message, as the layout needs it.

    ``size`` is the length of its data (unpadded); ``check`` is ``"text"`` (UTF8String or
    DiameterIdentity: must be ASCII to match), ``"enum"`` (``enum_values`` must hold the value) or
    ``""``; ``members`` the members of a Grouped AVP (None otherwise).
    """

    @property
    def head(self) -> bytes:
        """Its header, as a message of this layout carries it (§4.1: code, flags, length[, vendor])."""
        if self.flags & AVP_FLAG_VENDOR:
            return _AVP12.pack(self.code, self.flags << 24 | (12 + self.size), self.vendor)
        return _AVP8.pack(self.code, self.flags << 24 | (8 + self.size))

    code: int
    flags: int
    vendor: int
    size: int
    check: str = ""
    enum_values: frozenset[int] | None = None
    members: tuple[LayoutAvp, ...] | None = None


#: A layout matched this many times gets its rebuild compiled (:func:`_compile`, ~10x the cost of one
#: :func:`_rebuild`); a layout seen once or twice (many lengths of Session-Id, say) never pays for it.
COMPILE_AFTER = 8

# How to rebuild one Avp from the fields cut by the struct: (code, flags, vendor, index of its data
# field, or -1 for a Grouped AVP whose data is the slice [start:end] of the message, members).
_Build = tuple[int, int, int, int, int, int, "tuple[_Build, ...] | None"]


def _picker(indices: Sequence[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A C-speed getter of ``indices`` that always returns a tuple (itemgetter of one index does not)."""
    if len(indices) == 1:
        only = indices[0]
        return lambda fields: (fields[only],)
    if not indices:
        return lambda fields: ()
    return itemgetter(*indices)


class Layout:
    """The structure of one accepted message body (the AVPs after the 20-octet header)."""

    __slots__ = ("_build", "_compiled", "_enums", "_heads", "_matches", "_struct", "_texts", "_want")

    def __init__(self, avps: Sequence[LayoutAvp], start: int) -> None:
        fmt: list[str] = [">"]
        heads: list[int] = []
        want: list[bytes] = []
        texts: list[int] = []
        self._enums: list[tuple[int, frozenset[int]]] = []
        index = 0

        def walk(level: Sequence[LayoutAvp], pos: int) -> tuple[tuple[_Build, ...], int]:
            nonlocal index
            built: list[_Build] = []
            for a in level:
                head = a.head
                fmt.append(f"{len(head)}s")
                heads.append(index)
                want.append(head)
                index += 1
                data_at = pos + len(head)
                if a.members is not None:
                    members, end = walk(a.members, data_at)
                    if end != data_at + a.size:
                        raise ValueError("a Grouped AVP's members do not fill it")
                    built.append((a.code, a.flags, a.vendor, -1, data_at, end, members))
                else:
                    fmt.append(f"{a.size}s")
                    if a.check == "text":
                        texts.append(index)
                    elif a.check == "enum":
                        assert a.enum_values is not None
                        self._enums.append((index, a.enum_values))
                    built.append((a.code, a.flags, a.vendor, index, 0, 0, None))
                    index += 1
                pad = -a.size & 3
                if pad:
                    fmt.append(f"{pad}x")
                pos = data_at + a.size + pad
            return tuple(built), pos

        self._build, _ = walk(avps, start)
        self._compiled: Callable[[tuple[Any, ...], bytes], list[Avp]] | None = None
        self._matches = 0
        self._struct = struct.Struct("".join(fmt))
        self._heads = _picker(heads)
        self._want = tuple(want)
        self._texts = _picker(texts)

    def match(self, data: bytes, start: int) -> list[Avp] | None:
        """The AVPs of ``data[start:]`` if it has exactly this layout and passes its data checks, else None.

        ``data`` must be as long as the message the layout was taken from (the caller looks layouts up by
        message length).
        """
        fields = self._struct.unpack_from(data, start)
        if self._heads(fields) != self._want or not b"".join(self._texts(fields)).isascii():
            return None
        for i, values in self._enums:
            if int.from_bytes(fields[i], "big", signed=True) not in values:
                return None
        rebuild = self._compiled
        if rebuild is None:  # compiling costs about ten loops: only for layouts that keep coming
            self._matches += 1
            if self._matches < COMPILE_AFTER:
                return _rebuild(self._build, fields, data)
            rebuild = self._compiled = _compile(self._build)
        return rebuild(fields, data)


def _compile(build: tuple[_Build, ...]) -> Callable[[tuple[Any, ...], bytes], list[Avp]]:
    """The function that turns the fields the struct cut from a message (``f``) and the message (``d``) back
    into its AVPs: one list display of ``Avp(...)`` calls, with the codes, flags, vendors, field indices and
    Grouped slice bounds of this layout written in (integers of the layout, nothing from a message), as
    ``dataclasses`` and ``namedtuple`` generate their methods. :func:`_rebuild`, a loop over ``build``, costs
    15-20% more per ECR of a known layout (``bench/codec.py``)."""

    def expr(b: _Build) -> str:
        code, flags, vendor, i, start, end, members = b
        if members is None:
            return f"Avp({code:d}, {flags:d}, {vendor:d}, f[{i:d}])"
        return f"Avp({code:d}, {flags:d}, {vendor:d}, d[{start:d}:{end:d}], [{', '.join(map(expr, members))}])"

    source = f"def rebuild(f, d):\n    return [{', '.join(map(expr, build))}]\n"
    namespace: dict[str, Any] = {"Avp": Avp}
    exec(compile(source, "<diameter layout>", "exec"), namespace)  # integers only, see above
    return cast(Callable[[tuple[Any, ...], bytes], list[Avp]], namespace["rebuild"])


def _rebuild(build: tuple[_Build, ...], fields: tuple[Any, ...], data: bytes) -> list[Avp]:
    """What :func:`_compile`'s function does, by walking ``build`` (for layouts not compiled yet)."""
    out: list[Avp] = []
    for code, flags, vendor, i, start, end, members in build:
        if members is None:
            out.append(Avp(code, flags, vendor, fields[i]))
        else:
            out.append(Avp(code, flags, vendor, data[start:end], _rebuild(members, fields, data)))
    return out
