"""Validation of a received message against its dictionary (RFC 6733 §3, §4, §7).

``Validator.check_request`` returns the command definition of a good request and otherwise raises
the first error found as a :class:`ProtocolError` carrying exactly what the answer needs:

=========================  ====================================================================
3008 INVALID_HDR_BITS      E bit on a request; P bit on a command defined as not proxiable
3007 APPLICATION_UNSUPP.   the Application-Id is not one this node serves
3001 COMMAND_UNSUPPORTED   the command is unknown in its application
5001 AVP_UNSUPPORTED       an unknown AVP with the M bit (ignored without M, §4.1)
5014 INVALID_AVP_LENGTH    a fixed-size or Address AVP with the wrong data length
5004 INVALID_AVP_VALUE     an undefined Enumerated value, bad UTF-8 or DiameterIdentity
5009 AVP_OCCURS_TOO_MANY   more occurrences than the grammar's max
5008 AVP_NOT_ALLOWED       a known AVP the (non-extensible) grammar does not allow
5005 MISSING_AVP           a required AVP is absent, or a fixed-position AVP is out of place;
                           Failed-AVP holds a zero-filled example of it (§7.5)
=========================  ====================================================================

Errors inside a Grouped AVP are reported with Failed-AVP holding that Grouped AVP wrapping only the
offending member (§7.5). Unknown AVPs with the M bit inside a Grouped AVP that is itself not
mandatory are ignored, as freeDiameter does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .base_rfc6733 import ANSWER_MESSAGE, FAILED_AVP
from .dictionary import AvpDef, AvpType, CommandDef, Dictionary, Grammar
from .errors import FramingError, ProtocolError
from .layout import Layout, LayoutAvp
from .message import (
    _AVP8,
    _HEADER,
    _U32,
    AVP_FLAG_MANDATORY,
    AVP_FLAG_VENDOR,
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    HEADER_SIZE,
    VERSION,
    Avp,
    Message,
    decode_message,
    encode_avp,
)
from .types import FIXED_SIZE

__all__ = ["LAYOUTS_PER_LENGTH", "MAX_LAYOUTS", "Validator", "example_avp", "wrap_failed", "zero_fill"]

_MIN_SIZE: dict[AvpType, int] = {**FIXED_SIZE, AvpType.ADDRESS: 6}


def example_avp(defn: AvpDef) -> Avp:
    """A zero-filled AVP of ``defn``'s minimum size, for Failed-AVP of 5005/5014 (§7.5)."""
    return Avp(defn.code, defn.default_flags, defn.vendor, bytes(_MIN_SIZE.get(defn.type, 0)))


def wrap_failed(parents: tuple[Avp, ...], failed: Avp) -> Avp:
    """Nest ``failed`` inside copies of its Grouped ancestors (outermost first), each holding only it."""
    for parent in reversed(parents):
        failed = Avp(parent.code, parent.flags, parent.vendor, encode_avp(failed))
    return failed


def zero_fill(avp: Avp, dictionary: Dictionary) -> Avp:
    """Give a header-only Failed-AVP (from a length error) the minimum data of its type (§7.5)."""
    defn = dictionary.avps.get((avp.code, avp.vendor))
    if defn is None or avp.data:
        return avp
    return Avp(avp.code, avp.flags | (AVP_FLAG_VENDOR if avp.vendor else 0), avp.vendor, example_avp(defn).data)


# How the value of an AVP is checked; one small int per AVP definition, computed once.
_NONE, _FIXED, _ENUM, _UTF8, _IDENTITY, _ADDRESS, _GROUPED = range(7)
_UNBOUNDED = 1 << 30
#: Message lengths per command whose layouts are remembered (a peer's requests vary in length a little: a
#: Session-Id counter gains a digit, a User-Name comes or goes); beyond that, the oldest length is forgotten.
MAX_LAYOUTS = 32
#: Layouts remembered per message length: requests of two peers may have the same length and different
#: AVPs; each keeps its layout (the newest first) rather than replacing the other's on every request.
LAYOUTS_PER_LENGTH = 4

#: A compiled grammar entry for the careful path: (definition, check kind, fixed size, min, max).
_Slot = tuple[AvpDef, int, int, int, int]
#: A compiled grammar entry for the fast path: (definition, check kind, fixed size, presence bit,
#: repeat bit (set when a second occurrence needs counting), member plan if Grouped).
_FastSlot = tuple[AvpDef, int, int, int, int, "_Plan | None"]


def _kind(defn: AvpDef) -> int:
    t = defn.type
    if t is AvpType.GROUPED:
        return _GROUPED
    if t in FIXED_SIZE:
        return _ENUM if defn.enum_values is not None else _FIXED
    if t is AvpType.UTF8_STRING:
        return _UTF8
    if t in (AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI):
        return _IDENTITY
    if t is AvpType.ADDRESS:
        return _ADDRESS
    return _NONE


def _slot(defn: AvpDef, lo: int = 0, hi: int | None = None) -> _Slot:
    return (defn, _kind(defn), FIXED_SIZE.get(defn.type, 0), lo, _UNBOUNDED if hi is None else hi)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A grammar compiled for the hot path: integer keys, one dict lookup per AVP."""

    table: dict[int, _Slot]
    required: tuple[tuple[int, AvpDef, int], ...]
    head: tuple[int, ...]
    head_defs: tuple[AvpDef, ...]
    extensible: bool
    fast: dict[int, _FastSlot]
    required_mask: int


def _ikey(code: int, vendor: int) -> int:
    return code << 32 | vendor


class Validator:
    """Checks received messages against ``dictionary`` for a node serving ``applications``."""

    __slots__ = ("_headers", "_known", "_layouts", "_plans", "applications", "dictionary", "max_layouts")

    def __init__(self, dictionary: Dictionary, applications: frozenset[int], *,
                 max_layouts: int = MAX_LAYOUTS) -> None:
        self.dictionary = dictionary
        self.applications = applications
        self.max_layouts = max_layouts
        self._known: dict[int, _Slot] = {_ikey(*k): _slot(d) for k, d in dictionary.avps.items()}
        self._plans: dict[int, _Plan] = {}
        self._headers: dict[int, tuple[CommandDef, _Plan]] = {}
        #: Per flags+command+application, per message length: the layouts of requests accepted (newest first).
        self._layouts: dict[int, dict[int, list[Layout]]] = {}

    def _plan(self, grammar: Grammar) -> _Plan:
        plan = self._plans.get(id(grammar))
        if plan is None:
            table = {_ikey(*r.avp.key): _slot(r.avp, r.min, r.max) for r in grammar.rules}
            required = tuple((_ikey(*r.avp.key), r.avp, r.min) for r in grammar.rules if r.min > 0)
            head_defs = tuple(r.avp for r in grammar.rules if r.fixed)
            head = tuple(_ikey(*d.key) for d in head_defs)
            fast: dict[int, _FastSlot] = {}
            required_mask = 0
            for i, r in enumerate(grammar.rules):
                bit = 1 << i
                if r.min > 0:
                    required_mask |= bit
                child = self._plan(r.avp.grammar or _ANY) if r.avp.type is AvpType.GROUPED else None
                once = 0 if r.max is None else bit
                fast[_ikey(*r.avp.key)] = (r.avp, _kind(r.avp), FIXED_SIZE.get(r.avp.type, 0), bit, once, child)
            plan = self._plans[id(grammar)] = _Plan(
                table, required, head, head_defs, grammar.extensible, fast, required_mask
            )
        return plan

    def check_request(self, msg: Message) -> CommandDef:
        """Validate a request; return its command definition or raise the first ProtocolError."""
        if msg.flags & FLAG_ERROR:
            raise ProtocolError(3008, "E bit set on a request", header=msg.header)
        if msg.application and msg.application not in self.applications:
            raise ProtocolError(3007, f"application {msg.application} is not supported", header=msg.header)
        command = self.dictionary.command(msg.application, msg.command)
        if command is None:
            raise ProtocolError(
                3001, f"command {msg.command} is not supported in application {msg.application}",
                header=msg.header,
            )
        if msg.flags & FLAG_PROXIABLE and not command.proxiable:
            raise ProtocolError(3008, f"P bit set on {command.abbreviation[0] or command.name}", header=msg.header)
        self.check_avps(msg.avps, command.request, msg)
        return command

    def decode_request(self, data: bytes) -> tuple[Message, CommandDef]:
        """Decode and validate a request in one pass: the server's hot path.

        Same result and same first error as ``decode_message`` followed by ``check_request``
        (property-tested): each AVP is read once, its header decoded and checked against the
        compiled grammar in the same step. Anything the fast checks doubt is handed to that
        two-step path, which raises the canonical first error (or finds nothing wrong: valid
        non-ASCII UTF-8, an Address, an ignorable unknown AVP). A request with the layout of one
        accepted before (:mod:`.layout`: same AVPs, flags and lengths) is cut in a few C calls.
        """
        if len(data) < HEADER_SIZE:
            raise FramingError(f"{len(data)} octets is shorter than the {HEADER_SIZE}-octet header")
        vl, fc, app, hbh, e2e = _HEADER.unpack_from(data)
        end = vl & 0xFFFFFF
        hkey = fc << 32 | app
        known = self._headers.get(hkey)  # flags+command+application seen valid before
        if known is None or vl >> 24 != VERSION or end != len(data):
            known = self._check_header(data, vl, fc, app)
        layouts = self._layouts.get(hkey)
        if layouts is not None:
            for layout in layouts.get(end, ()):
                avps = layout.match(data, HEADER_SIZE)
                if avps is not None:
                    return Message(fc & 0xFFFFFF, app, fc >> 24, hbh, e2e, avps), known[0]
        try:
            avps = self._fast(data, HEADER_SIZE, end, known[1])
        except (_Doubt, KeyError, struct.error):
            return self._slow(data), known[0]
        self._remember(hkey, end, avps, known[1])
        return Message(fc & 0xFFFFFF, app, fc >> 24, hbh, e2e, avps), known[0]

    def _remember(self, hkey: int, end: int, avps: list[Avp], plan: _Plan) -> None:
        """Keep the layout of a request the fast path has just accepted."""
        if not self.max_layouts:
            return
        by_length = self._layouts.setdefault(hkey, {})
        same = by_length.get(end)
        if same is None:
            if len(by_length) >= self.max_layouts:
                del by_length[next(iter(by_length))]
            same = by_length[end] = []
        elif len(same) >= LAYOUTS_PER_LENGTH:
            same.pop()
        same.insert(0, Layout(_layout_avps(avps, plan), HEADER_SIZE))

    def _check_header(self, data: bytes, vl: int, fc: int, app: int) -> tuple[CommandDef, _Plan]:
        """The header checks of the careful path, remembered per (flags, command, application)."""
        end = vl & 0xFFFFFF
        flags = fc >> 24
        if vl >> 24 != VERSION or end != len(data) or end & 3:
            decode_message(data)  # raises the precise framing, 5011 or 5015 error
        if not flags & FLAG_REQUEST:
            raise ValueError("decode_request() was given an answer")
        command = self.dictionary.command(app, fc & 0xFFFFFF)
        if (
            flags & FLAG_ERROR or command is None
            or (app and app not in self.applications) or (flags & FLAG_PROXIABLE and not command.proxiable)
        ):
            msg = self._slow(data)
            raise AssertionError(f"the careful path accepted {msg.command} with a bad header")  # pragma: no cover
        known = self._headers[fc << 32 | app] = (command, self._plan(command.request))
        return known

    def _fast(self, data: bytes, pos: int, end: int, plan: _Plan) -> list[Avp]:
        """Decode one level and check it; raise _Doubt (or KeyError, struct.error) at the first doubt.

        It only has to notice that something may be wrong: the careful path then finds the first
        error in the canonical order (or nothing: valid non-ASCII UTF-8, an Address, an unknown AVP
        without the M bit). So each check is the cheapest one that cannot miss an error.
        """
        table = plan.fast
        avps: list[Avp] = []
        append = avps.append
        unpack8 = _AVP8.unpack_from
        unpack4 = _U32.unpack_from
        seen = 0  # one presence bit per grammar rule (see _Plan.bits)
        while pos < end:
            code, fl = unpack8(data, pos)
            length = fl & 0xFFFFFF
            last = pos + length
            if fl & 0x80000000:
                vendor = unpack4(data, pos + 8)[0]
                adata = data[pos + 12 : last]
                avp = Avp(code, fl >> 24, vendor, adata)
                key = code << 32 | vendor
                if length < 12:
                    raise _DOUBT
            else:
                adata = data[pos + 8 : last]
                avp = Avp(code, fl >> 24, 0, adata)
                key = code << 32
                if length < 8:
                    raise _DOUBT
            append(avp)
            pos = last + (-length & 3)
            defn, kind, size, bit, once, child = table[key]  # KeyError: unknown here, let the careful path judge
            if seen & once:
                raise _DOUBT  # repeated: maybe legal (max > 1), let the careful path count
            seen |= bit
            if kind >= _UTF8:  # the common case: text AVPs
                if kind == _GROUPED:
                    avp.members = self._fast(adata, 0, len(adata), child)  # type: ignore[arg-type]
                elif kind == _ADDRESS or not adata.isascii() or (kind == _IDENTITY and not adata):
                    raise _DOUBT
            elif kind and (len(adata) != size or (
                kind == _ENUM and int.from_bytes(adata, "big", signed=True) not in defn.enum_values  # type: ignore[operator]
            )):
                raise _DOUBT
        if pos != end or seen & plan.required_mask != plan.required_mask:
            raise _DOUBT
        for i, key in enumerate(plan.head):
            if avps[i].code << 32 | avps[i].vendor != key:  # (required, so avps has it)
                raise _DOUBT
        return avps

    def _slow(self, data: bytes) -> Message:
        """The careful two-step path: the first error in the canonical order, or the valid message."""
        msg = decode_message(data)
        self.check_request(msg)
        return msg


    def check_answer(self, msg: Message) -> CommandDef | None:
        """Validate an answer's AVPs against its command's answer grammar (or §7.2 for E-bit answers).

        Returns None for an unknown command; the caller decides whether that matters.
        """
        command = self.dictionary.command(msg.application, msg.command)
        if command is None:
            return None
        self.check_avps(msg.avps, ANSWER_MESSAGE if msg.flags & FLAG_ERROR else command.answer, msg)
        return command

    def check_avps(
        self,
        avps: list[Avp],
        grammar: Grammar,
        msg: Message,
        parents: tuple[Avp, ...] = (),
        mandatory: bool = True,
    ) -> None:
        """Check ``avps`` (one level) and, recursively, the members of their Grouped AVPs."""
        plan = self._plan(grammar)
        table = plan.table
        known = self._known
        head = plan.head
        counts: dict[int, int] = {}
        for index, avp in enumerate(avps):
            key = avp.code << 32 | avp.vendor
            if index < len(head) and head[index] != key:
                raise _fixed_missing(plan.head_defs[index], parents, msg)
            slot = table.get(key)
            if slot is None:
                slot = known.get(key)
                if slot is None:
                    if mandatory and avp.flags & AVP_FLAG_MANDATORY:
                        raise ProtocolError(
                            5001, f"AVP {avp.code} (vendor {avp.vendor}) is not supported and has the M bit",
                            failed_avp=wrap_failed(parents, avp), header=msg.header,
                        )
                    continue
                if not plan.extensible:
                    raise ProtocolError(
                        5008, f"{slot[0].name} is not allowed here",
                        failed_avp=wrap_failed(parents, avp), header=msg.header,
                    )
            defn, kind, size, _, most = slot
            if kind:
                data = avp.data
                if kind in (_FIXED, _ENUM):
                    if len(data) != size:
                        raise ProtocolError(
                            5014, f"{defn.name} has {len(data)} data octets, {defn.type.value} needs {size}",
                            failed_avp=wrap_failed(parents, avp), header=msg.header,
                        )
                    if kind == _ENUM and defn.enum_values is not None:
                        value = int.from_bytes(data, "big", signed=True)
                        if value not in defn.enum_values:
                            raise ProtocolError(
                                5004, f"{defn.name} value {value} is not defined",
                                failed_avp=wrap_failed(parents, avp), header=msg.header,
                            )
                elif kind == _UTF8:
                    if not data.isascii():
                        try:
                            data.decode("utf-8")
                        except UnicodeDecodeError:
                            raise ProtocolError(
                                5004, f"{defn.name} is not valid UTF-8",
                                failed_avp=wrap_failed(parents, avp), header=msg.header,
                            ) from None
                elif kind == _IDENTITY:
                    if not data or not data.isascii():
                        raise ProtocolError(
                            5004, f"{defn.name} is not a DiameterIdentity (empty or not ASCII)",
                            failed_avp=wrap_failed(parents, avp), header=msg.header,
                        )
                elif kind == _GROUPED:
                    self._check_grouped(defn, avp, msg, parents, mandatory)
                else:
                    _check_address(defn, avp, msg, parents)
            count = counts.get(key, 0) + 1
            counts[key] = count
            if count > most:
                raise ProtocolError(
                    5009, f"{defn.name} occurs more than {most} time(s)",
                    failed_avp=wrap_failed(parents, avp), header=msg.header,
                )
        for key, defn, least in plan.required:
            if counts.get(key, 0) < least:
                if key in head:
                    raise _fixed_missing(defn, parents, msg)
                raise ProtocolError(
                    5005, f"{defn.name} is missing",
                    failed_avp=wrap_failed(parents, example_avp(defn)), header=msg.header,
                )

    def _check_grouped(
        self, defn: AvpDef, avp: Avp, msg: Message, parents: tuple[Avp, ...], mandatory: bool
    ) -> None:
        try:
            children = avp.children()
        except ProtocolError as e:
            bad = e.failed_avp if e.failed_avp is not None else Avp(0, 0, 0, b"")
            raise ProtocolError(
                5014, f"in {defn.name}: {e.message}",
                failed_avp=wrap_failed((*parents, avp), zero_fill(bad, self.dictionary)), header=msg.header,
            ) from None
        if defn is FAILED_AVP:
            return  # §7.5: it holds the offending AVPs as received (unknown, malformed): never judge them
        self.check_avps(
            children, defn.grammar or _ANY, msg, (*parents, avp),
            mandatory and bool(avp.flags & AVP_FLAG_MANDATORY),
        )


def _layout_avps(avps: list[Avp], plan: _Plan) -> tuple[LayoutAvp, ...]:
    """What :class:`Layout` needs of AVPs the fast path accepted: their structure and the same data checks."""
    out: list[LayoutAvp] = []
    for avp in avps:
        defn, kind, _, _, _, child = plan.fast[avp.code << 32 | avp.vendor]
        members = None
        if kind == _GROUPED:
            assert avp.members is not None and child is not None
            members = _layout_avps(avp.members, child)
        check = "text" if kind in (_UTF8, _IDENTITY) else "enum" if kind == _ENUM else ""
        out.append(LayoutAvp(avp.code, avp.flags, avp.vendor, len(avp.data), check,
                             frozenset(defn.enum_values or ()) if check == "enum" else None, members))
    return tuple(out)


class _Doubt(Exception):
    """The fast path cannot vouch for a message; the careful path will judge it."""


_DOUBT = _Doubt()


def _fixed_missing(defn: AvpDef, parents: tuple[Avp, ...], msg: Message) -> ProtocolError:
    return ProtocolError(
        5005, f"{defn.name} is not in its fixed position",
        failed_avp=wrap_failed(parents, example_avp(defn)), header=msg.header,
    )


_ADDRESS_SIZES = {1: 6, 2: 18}


def _check_address(defn: AvpDef, avp: Avp, msg: Message, parents: tuple[Avp, ...]) -> None:
    data = avp.data
    if len(data) < 2:
        raise ProtocolError(
            5014, f"{defn.name} is shorter than its address family",
            failed_avp=wrap_failed(parents, avp), header=msg.header,
        )
    family = int.from_bytes(data[:2], "big")
    expected = _ADDRESS_SIZES.get(family)
    if expected is not None and len(data) != expected:
        raise ProtocolError(
            5014, f"{defn.name} has {len(data) - 2} address octets for family {family}",
            failed_avp=wrap_failed(parents, avp), header=msg.header,
        )


_ANY = Grammar((), extensible=True)
