"""Selecting an entry by what it covers: an IMEI (optionally paired with an IMSI), an inclusive IMEI
range, or a TAC (optionally with software versions). Shared by the CLI (``eir list add/remove``) and
the admin API so both accept and refuse exactly the same input.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eir.identity import parse_imei
from eir.register.model import Entry, EntryError, Granularity, Status

__all__ = ["SelectionError", "select_entry", "validate_svn"]


class SelectionError(EntryError):
    """The selection itself is wrong: not exactly one of IMEI, TAC or range, or an IMSI/SVN where it
    does not apply (a usage error rather than a bad value)."""


def validate_svn(text: str) -> str:
    """A software version number is 2 decimal digits (TS 23.003 §6.2.2)."""
    if len(text) != 2 or not text.isdigit():
        raise EntryError(f"software version {text!r} must be 2 digits")
    return text


def select_entry(status: Status, *, imei: str | None = None, tac: str | None = None,
                 rng: tuple[str, str] | None = None, imsi: str | None = None, svns: Iterable[str] = (),
                 **kw: Any) -> Entry:
    """The entry for exactly one of ``imei`` (+ ``imsi``), ``tac`` (+ ``svns``) or ``rng`` (first, last).

    IMEIs are typed by people here, so a 15-digit IMEI must carry its correct Luhn check digit.
    ``kw`` are the other Entry fields (reason, reporter, expires, ...). Raises :class:`SelectionError`
    for a wrong combination, :class:`~eir.identity.ImeiError` or :class:`EntryError` for a bad value.
    """
    svn_set = frozenset(svns)
    if sum(x is not None for x in (imei, tac, rng)) != 1:
        raise SelectionError("give exactly one of an IMEI, a TAC or a range (first and last IMEI)")
    if imei is not None:
        if svn_set:
            raise SelectionError("software versions apply to TAC rules only")
        return Entry.imei(imei, status, imsi=imsi, check_luhn=True, **kw)
    if imsi is not None:
        raise SelectionError("an IMSI applies to IMEI entries only")
    if tac is not None:
        return Entry.tac(tac, status, svns=svn_set or None, **kw)
    assert rng is not None
    first, last = (parse_imei(x, check_luhn=True).key for x in rng)
    return Entry(Granularity.RANGE, first, status, last=last, **kw)
