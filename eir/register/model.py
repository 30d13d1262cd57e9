"""The list model: statuses, reasons, granularities and entries (issue 4 "List model and decision").

Status values equal the TS 29.272 §7.3.51 Equipment-Status codes (and MAP EquipmentStatus, TS 29.002):
WHITELISTED 0, BLACKLISTED 1, GREYLISTED 2 (renamed PERMITTED/PROHIBITED/TRACKING in later releases).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace

from eir.identity import parse_imei, parse_tac

__all__ = ["Entry", "EntryError", "Granularity", "Reason", "Status", "validate_imsi"]


class Status(enum.IntEnum):
    """List colour; the value is the TS 29.272 Equipment-Status code."""

    WHITE = 0
    BLACK = 1
    GREY = 2

    @classmethod
    def parse(cls, text: str) -> Status:
        s = _STATUS_NAMES.get(text) or _STATUS_NAMES.get(text.strip().lower())
        if s is None:
            raise EntryError(f"status {text!r} is not one of white, grey, black (or 0, 2, 1)")
        return s


class Reason(enum.IntEnum):
    """Why an entry exists (GSMA Device Registry style reasons). Values are the CSV reason codes."""

    OTHER = 0
    STOLEN = 1
    LOST = 2
    FRAUD = 3
    FAULTY = 4
    COUNTERFEIT = 5
    DUPLICATE = 6
    TEST = 7

    @classmethod
    def parse(cls, text: str) -> Reason:
        r = _REASON_NAMES.get(text)
        if r is None:
            r = _REASON_NAMES.get(text.strip().lower())
        if r is None:
            names = ", ".join(x.name.lower() for x in cls)
            raise EntryError(f"reason {text!r} is not one of {names} (or codes 0-7)")
        return r


_STATUS_NAMES: dict[str, Status] = {}
for _s in Status:
    for _n in (_s.name.lower(), str(_s.value), _s.name.lower() + "listed"):
        _STATUS_NAMES[_n] = _s
_STATUS_NAMES["gray"] = _STATUS_NAMES["greylisted"] = Status.GREY
_REASON_NAMES: dict[str, Reason] = {"": Reason.OTHER}
for _r in Reason:
    _REASON_NAMES[_r.name.lower()] = _REASON_NAMES[str(_r.value)] = _r


class Granularity(enum.StrEnum):
    """What an entry covers, from the most to the least specific (the precedence order)."""

    IMEI_IMSI = "imei+imsi"
    IMEI = "imei"
    RANGE = "range"
    TAC_SVN = "tac+svn"
    TAC = "tac"
    DEFAULT = "default"


class EntryError(ValueError):
    """An entry that cannot exist (bad field, inconsistent granularity)."""


_IMSI_DIGITS = frozenset("0123456789")
_REPORTER_FORBIDDEN = frozenset(",;:\n\r\t")
_RULES = frozenset({Granularity.RANGE, Granularity.TAC, Granularity.TAC_SVN})


def validate_imsi(text: str) -> str:
    """An IMSI is 6 to 15 decimal digits (TS 23.003 §2.2)."""
    s = text.strip()
    if not 6 <= len(s) <= 15 or not _IMSI_DIGITS.issuperset(s):
        raise EntryError(f"IMSI {text!r} must be 6 to 15 decimal digits (TS 23.003 §2.2)")
    return s


@dataclass(frozen=True, slots=True)
class Entry:
    """One list entry.

    ``key`` is the 14-digit IMEI key (IMEI, IMEI+IMSI), the first IMEI of a range, or the 8-digit TAC
    (TAC, TAC+SVN). ``last`` is the last IMEI of a range (inclusive). ``imsi`` restricts an IMEI entry
    to requests carrying that IMSI (a pairing). ``svns`` restricts a TAC entry to those software
    versions. ``created``/``expires`` are Unix seconds; an expired entry is ignored.
    """

    granularity: Granularity
    key: str
    status: Status
    reason: Reason = Reason.OTHER
    reporter: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    expires: int | None = None
    imsi: str | None = None
    last: str | None = None
    svns: frozenset[str] | None = None

    def __post_init__(self) -> None:
        g = self.granularity
        if g in (Granularity.IMEI, Granularity.IMEI_IMSI):
            if len(self.key) != 14 or not self.key.isdigit():
                raise EntryError(f"IMEI key {self.key!r} must be 14 digits")
            if (g is Granularity.IMEI_IMSI) != (self.imsi is not None):
                raise EntryError("an IMEI+IMSI entry needs an IMSI and an IMEI entry must not have one")
            if self.last is not None or self.svns is not None:
                raise EntryError("an IMEI entry has no range end and no SVN set")
        elif g is Granularity.RANGE:
            if self.last is None or len(self.key) != 14 or len(self.last) != 14:
                raise EntryError("a range needs 14-digit first and last IMEIs")
            if int(self.last) < int(self.key):
                raise EntryError(f"range {self.key}..{self.last} ends before it starts")
            if self.imsi is not None or self.svns is not None:
                raise EntryError("a range entry has no IMSI and no SVN set")
        elif g in (Granularity.TAC, Granularity.TAC_SVN):
            if len(self.key) != 8 or not self.key.isdigit():
                raise EntryError(f"TAC {self.key!r} must be 8 digits")
            if (g is Granularity.TAC_SVN) != bool(self.svns):
                raise EntryError("a TAC+SVN rule needs a non-empty SVN set and a TAC entry must not have one")
            if self.imsi is not None or self.last is not None:
                raise EntryError("a TAC entry has no IMSI and no range end")
            for sv in self.svns or ():
                if len(sv) != 2 or not sv.isdigit():
                    raise EntryError(f"software version {sv!r} must be 2 digits")
        else:
            raise EntryError(f"no entry has granularity {g}")
        if len(self.reporter) > 64 or not _REPORTER_FORBIDDEN.isdisjoint(self.reporter):
            raise EntryError(f"reporter {self.reporter!r}: at most 64 characters, none of , ; : tab newline")
        if self.expires is not None and self.expires <= 0:
            raise EntryError("expires must be a positive Unix time")

    # ---- constructors -------------------------------------------------------------------------
    @classmethod
    def imei(cls, imei: str, status: Status, *, imsi: str | None = None, check_luhn: bool = False,
             **kw: object) -> Entry:
        """An IMEI entry (an IMEI+IMSI pairing when ``imsi`` is given)."""
        key = parse_imei(imei, check_luhn=check_luhn).key
        if imsi is not None:
            return cls(Granularity.IMEI_IMSI, key, status, imsi=validate_imsi(imsi), **kw)  # type: ignore[arg-type]
        return cls(Granularity.IMEI, key, status, **kw)  # type: ignore[arg-type]

    @classmethod
    def range(cls, first: str, last: str, status: Status, **kw: object) -> Entry:
        """An inclusive IMEI range first..last (keys are the 14-digit forms)."""
        return cls(Granularity.RANGE, parse_imei(first).key, status, last=parse_imei(last).key, **kw)  # type: ignore[arg-type]

    @classmethod
    def tac(cls, tac: str, status: Status, *, svns: frozenset[str] | None = None, **kw: object) -> Entry:
        """A TAC entry, or a TAC+SVN rule when ``svns`` is given."""
        g = Granularity.TAC_SVN if svns else Granularity.TAC
        return cls(g, parse_tac(tac), status, svns=frozenset(svns) if svns else None, **kw)  # type: ignore[arg-type]

    # ---- identity and helpers ---------------------------------------------------------------
    @property
    def ident(self) -> str:
        """What identifies the entry for replace/remove: one entry per ident (and per reporter rule)."""
        g = self.granularity
        if g is Granularity.IMEI_IMSI:
            return f"imei:{self.key}:{self.imsi}"
        if g is Granularity.RANGE:
            return f"range:{self.key}:{self.last}"
        if g is Granularity.TAC_SVN:
            return f"tac:{self.key}:{' '.join(sorted(self.svns or ()))}"
        return f"{g.value}:{self.key}"

    @property
    def is_rule(self) -> bool:
        """Ranges and TAC entries are rules held in process memory; IMEI entries stay in the store."""
        return self.granularity in _RULES

    @property
    def width(self) -> int:
        """Number of IMEIs a range covers (1 for an IMEI entry)."""
        return int(self.last) - int(self.key) + 1 if self.last is not None else 1

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now

    def with_(self, **changes: object) -> Entry:
        return replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> str:
        g = self.granularity
        what = {
            Granularity.IMEI_IMSI: f"IMEI {self.key} paired with IMSI {self.imsi}",
            Granularity.IMEI: f"IMEI {self.key}",
            Granularity.RANGE: f"range {self.key}..{self.last}",
            Granularity.TAC_SVN: f"TAC {self.key} SVN {','.join(sorted(self.svns or ()))}",
            Granularity.TAC: f"TAC {self.key}",
        }.get(g, g.value)
        exp = f", expires {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.expires))}" if self.expires else ""
        return f"{what}: {self.status.name.lower()} ({self.reason.name.lower()}) by {self.reporter or '-'}{exp}"
