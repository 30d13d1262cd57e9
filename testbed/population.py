"""Subscribers, devices, list entries and the expected EIR answer, independent of any EIR.

:func:`expected_answer` re-implements the S13 decision an EIR should make from the list entries
(IMEI+IMSI pairing, then IMEI, then the narrowest range, then TAC, then the unknown-equipment
policy), so a verdict never trusts the EIR under test. Lists come from the scenario (and can seed
the EIR) or from a CSV list file in the register's format (``kind,imei,last,status,...,imsi``).
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from testbed.eca import EirAnswer

__all__ = ["CATEGORIES", "Device", "ListEntry", "Lists", "expected_answer", "luhn_digit", "read_list_csv",
           "write_list_csv"]

#: Device categories and the list level that decides them (the verdict groups by these).
CATEGORIES = (
    "white_imei", "grey_imei", "black_imei",
    "white_range", "grey_range", "black_range",
    "white_tac", "grey_tac", "black_tac",
    "paired",  # blacklisted IMEI, paired with its own IMSI as white: allowed (Oracle EIR "BLKAL")
    "paired_other_imsi",  # blacklisted IMEI paired with a different IMSI: still blacklisted
    "unknown",  # no entry at all: Experimental-Result 5422, or the EIR's default colour
    "malformed",  # not an IMEI: 5004 INVALID_AVP_VALUE
    "emergency_black",  # blacklisted IMEI on an emergency attach: never refused (TS 22.016)
)

_STATUS_ANSWER = {"white": EirAnswer.WHITE, "grey": EirAnswer.GREY, "black": EirAnswer.BLACK}


def luhn_digit(digits14: str) -> str:
    """The IMEI check digit (TS 23.003 Annex B), computed here so the testbed stays independent."""
    total = 0
    for i, ch in enumerate(digits14):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One list entry: ``kind`` imei (with ``imsi``: a pairing), range (``key``..``last``) or tac."""

    kind: str
    key: str
    status: str
    last: str | None = None
    imsi: str | None = None


@dataclass(frozen=True, slots=True)
class Device:
    """One subscriber with its device. ``imei`` is the 14-digit key, or the malformed text sent as is."""

    index: int
    imsi: str
    imei: str
    svn: str
    category: str
    home: int
    mover_to: int | None = None

    @property
    def well_formed(self) -> bool:
        return len(self.imei) == 14 and self.imei.isdigit()

    def imei_as_sent(self, digits: int) -> str:
        """14 digits, or 15 with the Luhn check digit (VectorCore); malformed text unchanged."""
        if digits == 15 and self.well_formed:
            return self.imei + luhn_digit(self.imei)
        return self.imei


@dataclass
class Lists:
    """The lists as an index the expectation reads (dict lookups and bisect, like an EIR should)."""

    entries: list[ListEntry] = field(default_factory=list)
    _imei: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _pair: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)
    _tac: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _ranges: list[tuple[int, int, str]] = field(default_factory=list, init=False, repr=False)
    _starts: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        for e in self.entries:
            self._index(e)
        self._ranges.sort()
        self._starts = [r[0] for r in self._ranges]

    def _index(self, e: ListEntry) -> None:
        if e.kind == "imei" and e.imsi:
            self._pair[(e.key, e.imsi)] = e.status
        elif e.kind == "imei":
            self._imei[e.key] = e.status
        elif e.kind == "range":
            self._ranges.append((int(e.key), int(e.last or e.key), e.status))
        elif e.kind == "tac":
            self._tac[e.key] = e.status
        else:
            raise ValueError(f"list entry kind {e.kind!r} is not imei, range or tac")

    def status(self, imei: str, imsi: str | None) -> str | None:
        """The decided colour, or None when no entry matches."""
        if imsi is not None:
            pair = self._pair.get((imei, imsi))
            if pair is not None:
                return pair
        st = self._imei.get(imei)
        if st is not None:
            return st
        n = int(imei)
        best: tuple[int, str] | None = None
        i = bisect.bisect_right(self._starts, n) - 1
        # Walk back over ranges starting at or before n (ranges in a scenario are few and disjoint).
        while i >= 0 and n - self._ranges[i][0] < 10**8:
            first, last, colour = self._ranges[i]
            if first <= n <= last and (best is None or last - first < best[0]):
                best = (last - first, colour)
            i -= 1
        if best is not None:
            return best[1]
        return self._tac.get(imei[:8])


def expected_answer(device: Device, lists: Lists, unknown: str = "unknown") -> EirAnswer:
    """What a correct EIR answers for ``device`` (``unknown``: the EIR's unknown-equipment policy)."""
    if not device.well_formed:
        return EirAnswer.INVALID
    st = lists.status(device.imei, device.imsi)
    if st is None:
        return EirAnswer.UNKNOWN if unknown == "unknown" else _STATUS_ANSWER[unknown]
    return _STATUS_ANSWER[st]


def write_list_csv(f: TextIO, entries: Iterable[ListEntry], reporter: str = "testbed") -> int:
    """The register's canonical CSV (``eir list import`` reads it)."""
    w = csv.writer(f, lineterminator="\n")
    w.writerow(("kind", "imei", "last", "status", "reason", "reporter", "imsi", "svn", "created", "expires"))
    n = 0
    for e in entries:
        w.writerow((e.kind, e.key, e.last or "", e.status, "test", reporter, e.imsi or "", "", "", ""))
        n += 1
    return n


_COLOURS = {"white": "white", "0": "white", "grey": "grey", "gray": "grey", "2": "grey", "black": "black",
            "1": "black", "whitelisted": "white", "greylisted": "grey", "blacklisted": "black"}


def read_list_csv(f: Iterable[str]) -> Iterator[ListEntry]:
    """Entries of a list file in the register's CSV format (14- or 15-digit IMEIs, 8-digit TACs)."""
    reader = csv.DictReader(f)
    for line, row in enumerate(reader, start=2):
        key = (row.get("imei") or "").strip()
        last = (row.get("last") or "").strip() or None
        kind = (row.get("kind") or "").strip() or ("range" if last else "tac" if len(key) == 8 else "imei")
        colour = _COLOURS.get((row.get("status") or "black").strip().lower())
        if colour is None or not key.isdigit():
            raise ValueError(f"list file line {line}: bad status or IMEI in {row}")
        if kind in ("imei", "range"):
            key = key[:14]
            last = last[:14] if last else None
        yield ListEntry(kind, key, colour, last, (row.get("imsi") or "").strip() or None)
