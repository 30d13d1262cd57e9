"""Dictionaries as data: AVP definitions, command grammars, applications (RFC 6733 §3.2, §4.5).

A specification module (``base_rfc6733``, ``s13_ts29272``) declares its AVPs and commands with the
classes here; a :class:`Dictionary` merges any number of them and precompiles what the validator and
the codec need, so adding an application means adding a table, never touching a handler.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "AvpDef",
    "AvpType",
    "CommandDef",
    "Dictionary",
    "Flag",
    "Grammar",
    "Rule",
    "fixed",
    "many",
    "optional",
    "required",
]


class AvpType(enum.Enum):
    """Basic and derived AVP data formats (RFC 6733 §4.2, §4.3)."""

    OCTET_STRING = "OctetString"
    INTEGER32 = "Integer32"
    INTEGER64 = "Integer64"
    UNSIGNED32 = "Unsigned32"
    UNSIGNED64 = "Unsigned64"
    FLOAT32 = "Float32"
    FLOAT64 = "Float64"
    GROUPED = "Grouped"
    ADDRESS = "Address"
    TIME = "Time"
    UTF8_STRING = "UTF8String"
    DIAMETER_IDENTITY = "DiameterIdentity"
    DIAMETER_URI = "DiameterURI"
    ENUMERATED = "Enumerated"


class Flag(enum.Enum):
    """How an AVP flag bit must be set when sent (RFC 6733 §4.5 flag rules table)."""

    MUST = "must"
    MAY = "may"
    MUST_NOT = "mustnot"


@dataclass(frozen=True, slots=True)
class AvpDef:
    """One row of an AVP table: code, vendor, name, data type and flag rules.

    ``enum_values`` lists the defined values of an Enumerated AVP; a value outside it is answered with
    5004 DIAMETER_INVALID_AVP_VALUE. ``grammar`` is the content rule of a Grouped AVP.
    """

    code: int
    name: str
    type: AvpType
    vendor: int = 0
    m: Flag = Flag.MUST
    p: Flag = Flag.MAY
    enum_values: Mapping[int, str] | None = None
    grammar: Grammar | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.code, self.vendor)

    @property
    def default_flags(self) -> int:
        """Flags we set when we send this AVP: V when vendor-specific, M when the rule says must."""
        flags = 0x80 if self.vendor else 0
        if self.m is Flag.MUST:
            flags |= 0x40
        return flags


@dataclass(frozen=True, slots=True)
class Rule:
    """One element of a Command Code Format (RFC 6733 §3.2): ``min*max<avp>``.

    ``fixed`` marks a ``< >`` element, which must appear at its position at the head of the message.
    ``max`` of ``None`` means unbounded.
    """

    avp: AvpDef
    min: int
    max: int | None
    fixed: bool = False


def fixed(avp: AvpDef) -> Rule:
    """``<AVP>``: required, once, at its fixed position (e.g. Session-Id first, RFC 6733 §8.8)."""
    return Rule(avp, 1, 1, fixed=True)


def required(avp: AvpDef, min: int = 1, max: int | None = 1) -> Rule:
    """``{AVP}``: required; ``1*{AVP}`` is ``required(avp, max=None)``."""
    return Rule(avp, min, max)


def optional(avp: AvpDef, max: int | None = 1) -> Rule:
    """``[AVP]``: optional, at most ``max`` times."""
    return Rule(avp, 0, max)


def many(avp: AvpDef, min: int = 0) -> Rule:
    """``*[AVP]``: any number of times."""
    return Rule(avp, min, None)


@dataclass(frozen=True, slots=True)
class Grammar:
    """A Command Code Format or Grouped AVP grammar: ordered rules plus ``*[AVP]`` (``extensible``)."""

    rules: tuple[Rule, ...]
    extensible: bool = True


@dataclass(frozen=True, slots=True)
class CommandDef:
    """A command: code, name, application and the grammars of its request and answer (§3.2)."""

    code: int
    name: str
    application: int
    request: Grammar
    answer: Grammar
    proxiable: bool = True
    abbreviation: tuple[str, str] = ("", "")

    @property
    def key(self) -> tuple[int, int]:
        return (self.application, self.code)


@dataclass(slots=True)
class Dictionary:
    """Merged AVP and command tables of several specifications (the validator compiles its grammars)."""

    avps: dict[tuple[int, int], AvpDef] = field(default_factory=dict)
    commands: dict[tuple[int, int], CommandDef] = field(default_factory=dict)

    @classmethod
    def of(cls, *tables: Iterable[AvpDef | CommandDef]) -> Dictionary:
        d = cls()
        for table in tables:
            for item in table:
                d.add(item)
        return d

    def add(self, item: AvpDef | CommandDef) -> None:
        if isinstance(item, AvpDef):
            known = self.avps.get(item.key)
            if known is not None and known != item:
                raise ValueError(f"AVP {item.key} defined twice: {known.name} and {item.name}")
            self.avps[item.key] = item
        else:
            self.commands[item.key] = item
            for grammar in (item.request, item.answer):
                for rule in grammar.rules:
                    self.add(rule.avp)

    def avp(self, code: int, vendor: int = 0) -> AvpDef | None:
        return self.avps.get((code, vendor))

    def command(self, application: int, code: int) -> CommandDef | None:
        """The command with this code in this application, or in the base protocol (application 0)."""
        return self.commands.get((application, code)) or self.commands.get((0, code))
