"""The register's CSV format (import and export; issue 4 "Management CLI").

Canonical header (exported by ``eir list export``; every column but ``imei`` may be empty)::

    kind,imei,last,status,reason,reporter,imsi,svn,created,expires

* ``kind``: ``imei``, ``range`` or ``tac`` (empty: ``range`` if ``last`` is set, ``tac`` if ``imei`` has
  8 digits, else ``imei``);
* ``imei``: the IMEI (14 digits, or 15 with a correct Luhn check digit: imports are typed by people,
  TS 23.003 Annex B), the first IMEI of a range, or the TAC; ``last``: the last IMEI of a range;
* ``status``: white, grey, black (or 0, 2, 1); empty gives the import's default status;
* ``reason``: stolen, lost, fraud, faulty, counterfeit, duplicate, test, other, or codes 1-7 / 0;
* ``reporter``: reporting organisation (empty: the importing organisation);
* ``imsi``: pairs an IMEI entry with an IMSI; ``svn``: space-separated 2-digit software versions
  (a TAC+SVN rule);
* ``created``/``expires``: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SSZ`` or Unix seconds.

GSMA-style range files are accepted too: a header with ``imei_start,imei_end`` and optionally
``reason_code``, ``reporter``/``reporting_org``, ``date``, ``status`` (status black when absent).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from eir.identity import ImeiError, parse_imei, parse_tac
from eir.register.model import Entry, EntryError, Granularity, Reason, Status, validate_imsi

__all__ = ["HEADER", "Chunk", "CountedLines", "CsvFormatError", "PlainSpec", "Row", "RowError", "format_time",
           "parse_time", "read_chunks", "read_rows", "write_entries"]

HEADER = ("kind", "imei", "last", "status", "reason", "reporter", "imsi", "svn", "created", "expires")
_GSMA = {"imei_start": "imei", "imei_end": "last", "reason_code": "reason", "reporting_org": "reporter",
         "reporter": "reporter", "date": "created", "status": "status", "imsi": "imsi", "expires": "expires"}


_STATUS = {s.name.lower(): s for s in Status}
_REASON = {r.name.lower(): r for r in Reason}


class CsvFormatError(ValueError):
    """The file as a whole is unusable (bad header)."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    entry: Entry


class CountedLines:
    """Iterate a text file's lines, counting the characters read (for progress bars)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.read = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            self.read += len(line)
            yield line


@dataclass(frozen=True, slots=True)
class PlainSpec:
    """What a plain IMEI row says besides its IMEI: shared by every row with the same status, reason and
    reporter (a bulk file has a handful of these for millions of rows)."""

    status: Status
    reason: Reason
    reporter: str
    created: int

    def entry(self, key: str) -> Entry:
        return Entry(Granularity.IMEI, key, self.status, self.reason, self.reporter, self.created)


@dataclass(slots=True)
class Chunk:
    """A chunk of a file: plain IMEI rows column-wise (line, 14-digit key, spec), every other good row as
    an entry, and the bad rows."""

    lines: list[int]
    keys: list[str]
    specs: list[PlainSpec]
    rows: list[Row]
    bad: list[RowError]
    #: Good rows counted but not kept (``read_chunks(keep=False)``).
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.keys) + len(self.rows) + len(self.bad) + self.skipped

    def all_rows(self) -> list[Row]:
        """Every good row as an entry, in file order."""
        plain = [Row(n, s.entry(k)) for n, k, s in zip(self.lines, self.keys, self.specs, strict=True)]
        return sorted(plain + self.rows, key=lambda r: r.line) if self.rows and plain else plain or self.rows


def parse_time(text: str) -> int | None:
    """``YYYY-MM-DD``, ISO 8601 date-time (UTC if no offset) or Unix seconds; empty -> None."""
    t = text.strip()
    if not t:
        return None
    if t.isdigit():
        return int(t)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise EntryError(f"time {text!r} is not YYYY-MM-DD, an ISO 8601 date-time or Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def format_time(t: int | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class _Parser:
    def __init__(self, columns: list[str], reporter: str, status: Status | None, now: int) -> None:
        self.idx = {c: i for i, c in enumerate(columns)}
        self.reporter, self.status, self.now = reporter, status, now
        self.n = len(columns)

    def get(self, row: list[str], col: str) -> str:
        i = self.idx.get(col)
        return row[i].strip() if i is not None and i < len(row) else ""

    def plain_reader(self) -> Callable[[list[str]], tuple[str, PlainSpec] | None] | None:
        """Fast path for the common row, a plain IMEI entry (kind imei or empty, a 14-digit IMEI, status,
        reason and reporter spelled as exported), when the header has no other columns; None otherwise.
        Rows it declines (anything unusual, including every error) take :meth:`entry`."""
        ix = self.idx
        if not set(ix) <= {"kind", "imei", "status", "reason", "reporter"}:
            return None
        n, i_kind, i_imei = self.n, ix.get("kind"), ix["imei"]
        i_status, i_reason, i_rep = ix.get("status"), ix.get("reason"), ix.get("reporter")
        specs: dict[tuple[str, str, str], PlainSpec | None] = {}

        def spec_of(key: tuple[str, str, str]) -> PlainSpec | None:
            st = _STATUS.get(key[0]) if key[0] else self.status
            reason = _REASON.get(key[1]) if key[1] else Reason.OTHER
            if st is None or reason is None:
                return None
            spec = PlainSpec(st, reason, key[2].strip() or self.reporter, self.now)
            try:  # validates the reporter once per spec
                spec.entry("0" * 14)
            except EntryError:
                return None
            return spec

        def plain(row: list[str]) -> tuple[str, PlainSpec] | None:
            if len(row) != n or (i_kind is not None and row[i_kind] not in ("imei", "")):
                return None
            imei = row[i_imei]
            if len(imei) != 14 or not imei.isdigit():
                return None
            key = (row[i_status] if i_status is not None else "", row[i_reason] if i_reason is not None else "",
                   row[i_rep] if i_rep is not None else "")
            try:
                spec = specs[key]
            except KeyError:
                spec = specs[key] = spec_of(key)
            return None if spec is None else (imei, spec)

        return plain

    def entry(self, row: list[str]) -> Entry:
        g = self.get
        first, last, kind = g(row, "imei"), g(row, "last"), g(row, "kind").lower()
        if not first:
            raise EntryError("the imei column is empty")
        if not kind:
            kind = "range" if last else ("tac" if len(first) == 8 else "imei")
        st = g(row, "status")
        if st:
            status = Status.parse(st)
        elif self.status is not None:
            status = self.status
        else:
            raise EntryError("the status column is empty and the import has no default status")
        reason, reporter = Reason.parse(g(row, "reason")), g(row, "reporter") or self.reporter
        created, expires = parse_time(g(row, "created")) or self.now, parse_time(g(row, "expires"))
        imsi, svn = g(row, "imsi"), g(row, "svn")
        if kind == "imei":
            if svn:
                raise EntryError("svn applies to tac rows only")
            key = parse_imei(first, check_luhn=True).key
            if imsi:
                return Entry(Granularity.IMEI_IMSI, key, status, reason, reporter, created, expires,
                             validate_imsi(imsi))
            return Entry(Granularity.IMEI, key, status, reason, reporter, created, expires)
        if imsi:
            raise EntryError("imsi applies to imei rows only")
        if kind == "range":
            a, b = parse_imei(first, check_luhn=True).key, parse_imei(last or first, check_luhn=True).key
            if a == b:
                return Entry(Granularity.IMEI, a, status, reason, reporter, created, expires)
            return Entry(Granularity.RANGE, a, status, reason, reporter, created, expires, last=b)
        if kind == "tac":
            svns = frozenset(svn.replace(",", " ").split()) if svn else None
            return Entry(Granularity.TAC_SVN if svns else Granularity.TAC, parse_tac(first), status, reason,
                         reporter, created, expires, svns=svns)
        raise EntryError(f"kind {kind!r} is not imei, range or tac")


def read_chunks(f: Iterable[str], *, reporter: str, status: Status | None = None, chunk: int = 20_000,
                now: int | None = None, keep: bool = True) -> Iterator[Chunk]:
    """Parse a CSV file into chunks of about ``chunk`` rows; line numbers count the header as line 1.

    ``keep=False`` only validates: chunks then carry the bad rows and a count of the good ones
    (``skipped``), for strict import's first pass."""
    reader = csv.reader(f)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CsvFormatError("the file is empty (expected a header line)") from None
    if "imei_start" in header:
        columns = [_GSMA.get(h, "") for h in header]
        status = status if status is not None else Status.BLACK
    else:
        unknown = [h for h in header if h not in HEADER]
        if unknown or "imei" not in header:
            raise CsvFormatError(f"line 1: header {header} must use the columns {','.join(HEADER)} "
                                 "(imei required) or imei_start,imei_end[,reason_code,reporter,date,status]"
                                 + (f"; unknown column(s) {unknown}" if unknown else ""))
        columns = header
    p = _Parser(columns, reporter, status, int(time.time()) if now is None else now)
    plain = p.plain_reader()
    c = Chunk([], [], [], [], [])
    count = 0
    for rec in reader:
        hit = plain(rec) if plain is not None else None
        if hit is not None:
            if keep:
                c.lines.append(reader.line_num)
                c.keys.append(hit[0])
                c.specs.append(hit[1])
            else:
                c.skipped += 1
        else:
            line = reader.line_num
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if len(rec) > p.n:
                c.bad.append(RowError(line, f"{len(rec)} fields, the header has {p.n}"))
            else:
                try:
                    entry = p.entry(rec)
                    if keep:
                        c.rows.append(Row(line, entry))
                    else:
                        c.skipped += 1
                except (ImeiError, EntryError) as exc:
                    c.bad.append(RowError(line, str(exc)))
        count += 1
        if count >= chunk:
            yield c
            c = Chunk([], [], [], [], [])
            count = 0
    if len(c):
        yield c


def read_rows(f: Iterable[str], *, reporter: str, status: Status | None = None, chunk: int = 20_000,
              now: int | None = None) -> Iterator[tuple[list[Row], list[RowError]]]:
    """Parse a CSV file into chunks of (rows, bad rows), every good row as an :class:`Entry`."""
    for c in read_chunks(f, reporter=reporter, status=status, chunk=chunk, now=now):
        yield c.all_rows(), c.bad


def entry_row(e: Entry) -> list[str]:
    kind = {"imei+imsi": "imei", "tac+svn": "tac"}.get(e.granularity.value, e.granularity.value)
    return [kind, e.key, e.last or "", e.status.name.lower(), e.reason.name.lower(), e.reporter, e.imsi or "",
            " ".join(sorted(e.svns or ())), format_time(e.created), format_time(e.expires)]


def write_entries(f: TextIO, chunks: Iterable[Iterable[Entry]], *, header: bool = True) -> int:
    """Write entries in the canonical format; return the number of rows."""
    w = csv.writer(f, lineterminator="\n")
    if header:
        w.writerow(HEADER)
    n = 0
    for chunk in chunks:
        rows = [entry_row(e) for e in chunk]
        w.writerows(rows)
        n += len(rows)
    return n
