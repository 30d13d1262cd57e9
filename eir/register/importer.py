"""Bulk import of a CSV file into a store (issue 4 "Import of millions of rows").

* ``strict`` (the default): a first pass validates every row; if any row is bad nothing is applied and
  every bad row is reported with its line number and reason. Then a second pass applies the file.
* not strict: good rows are applied, bad rows are skipped and reported.

Either way the report says exactly what was applied. Import is idempotent (an entry replaces the
entry with the same identity), so a file interrupted by a store outage can simply be imported again;
``ImportInterrupted`` says up to which line the file was applied.

Speed (a national block list has 170M+ IMEIs): plain IMEI rows, nearly all of a bulk file, never become
:class:`Entry` objects. Rows with the same status, reason and reporter share one encoded value, so a
chunk's plain rows go to the store as (key, value) pairs that :meth:`Store.add_new_values` sets only
where the IMEI is not listed yet (one round trip; in Redis one script doing HSETNX per row). The few
rows whose IMEI is already listed, and every other row, then take :meth:`Store.put_many`, which merges,
applies the ownership rule and reports conflicts, in file order. One chunk is applied while the next is
parsed.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eir.register.codec import encode_plain
from eir.register.csvio import Chunk, CountedLines, PlainSpec, Row, RowError, read_chunks
from eir.register.model import Status
from eir.register.store import Store, StoreUnavailable
from eir.register.validation import validate_file

__all__ = ["IMPORT_CHUNK", "ImportInterrupted", "ImportReport", "import_csv"]

#: Rows per store request. Redis runs one script per chunk and answers nobody else meanwhile: 5,000 plain
#: rows hold it about 10 ms (2 µs a row), so running EIRs' lookups wait at most that long during an
#: import. Measured: 2,000 to 50,000 rows per chunk import at the same rate (bench/register_import.py).
IMPORT_CHUNK = 5_000


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    applied: int = 0
    bad: list[RowError] = field(default_factory=list)
    conflicts: list[RowError] = field(default_factory=list)
    applied_nothing: bool = False

    @property
    def ok(self) -> bool:
        return not self.bad and not self.conflicts and not self.applied_nothing


class ImportInterrupted(StoreUnavailable):
    """The store became unavailable mid-import; ``applied_through`` is the last line applied."""

    def __init__(self, applied_through: int, report: ImportReport, cause: str) -> None:
        super().__init__(f"store unavailable after line {applied_through} ({report.applied} entries applied, "
                         f"the rest not); import the file again (it is idempotent): {cause}")
        self.applied_through = applied_through
        self.report = report


async def import_csv(store: Store, path: Path, *, reporter: str, status: Status | None = None,
                     force: bool = False, strict: bool = True, chunk: int = IMPORT_CHUNK,
                     progress: Callable[[str, int], None] | None = None) -> ImportReport:
    """Import ``path`` into ``store`` (the cyclic GC is paused meanwhile: millions of short-lived
    entries would otherwise trigger it constantly);  ``progress(phase, chars_read)`` is called after each chunk."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return await _import(store, path, reporter=reporter, status=status, force=force, strict=strict,
                             chunk=chunk, progress=progress)
    finally:
        if was_enabled:
            gc.enable()


class _Applier:
    """Applies chunks to the store: the fast path for plain rows, then :meth:`Store.put_many`."""

    def __init__(self, store: Store, force: bool) -> None:
        self.store = store
        self.force = force
        self.values: dict[PlainSpec, str | None] = {}

    async def _encoded(self, specs: list[PlainSpec]) -> None:
        new = set(specs) - self.values.keys()
        if not new:
            return
        rids = await self.store.reporter_ids(s.reporter for s in new)
        for s in new:
            self.values[s] = encode_plain(s.status, s.reason, rids[s.reporter], s.created)

    async def apply(self, c: Chunk, after: asyncio.Task[object] | None) -> tuple[int, list[RowError]]:
        """(rows applied, conflicts) of one chunk, applied once ``after`` (the previous chunk) is done;
        what needs no store is prepared before that."""
        slow: list[Row] = list(c.rows)
        if c.keys:
            await self._encoded(list(dict.fromkeys(c.specs)))
            values = self.values
            keys: list[str] = []
            vals: list[str] = []
            lines: list[int] = []
            kept: list[PlainSpec] = []
            # A plain row must not overtake an earlier row of the same IMEI that takes the slow path.
            others = {r.entry.key for r in c.rows}
            for line, key, spec in zip(c.lines, c.keys, c.specs, strict=True):
                v = values[spec]
                if v is None or key in others:
                    slow.append(Row(line, spec.entry(key)))
                else:
                    keys.append(key)
                    vals.append(v)
                    lines.append(line)
                    kept.append(spec)
            taken = await self.store.add_new_values(keys, vals, after=after)
            after = None
            for i in taken:  # already listed: merge with what is there, in file order
                slow.append(Row(lines[i], kept[i].entry(keys[i])))
        if after is not None:
            await after
        applied = len(c.keys) + len(c.rows) - len(slow)
        if not slow:
            return applied, []
        slow.sort(key=lambda r: r.line)
        conflicts = await self.store.put_many([r.entry for r in slow], force=self.force)
        return applied + len(slow) - len(conflicts), [RowError(slow[x.index].line, x.reason) for x in conflicts]


async def _import(store: Store, path: Path, *, reporter: str, status: Status | None, force: bool, strict: bool,
                  chunk: int, progress: Callable[[str, int], None] | None) -> ImportReport:
    report = ImportReport()
    if strict:
        report.rows, report.bad = await validate_file(path, reporter=reporter, status=status, chunk=chunk,
                                                      progress=progress)
        if report.bad:
            report.applied_nothing = True
            return report
        report.rows = 0
    last_line = 1
    applier = _Applier(store, force)
    # Chunks are applied in file order, one after the other, but overlapped with the client's work:
    # while the store applies chunk i, this process parses chunk i+1 and builds its request.
    pending: tuple[asyncio.Task[tuple[int, list[RowError]]], int] | None = None

    async def settle(previous: tuple[asyncio.Task[tuple[int, list[RowError]]], int] | None) -> None:
        nonlocal last_line
        if previous is None:
            return
        task, chunk_last = previous
        try:
            applied, conflicts = await task
        except StoreUnavailable as exc:
            raise ImportInterrupted(last_line, report, str(exc)) from exc
        report.conflicts.extend(conflicts)
        report.applied += applied
        last_line = chunk_last

    await store._begin_write()  # one write group: the embedded store saves its file once, at the end
    tasks: list[asyncio.Task[tuple[int, list[RowError]]]] = []
    with path.open(newline="", encoding="utf-8") as raw:
        f = CountedLines(raw)
        try:
            for c in read_chunks(f, reporter=reporter, status=status, chunk=chunk):
                report.rows += len(c)
                report.bad.extend(c.bad)
                if c.keys or c.rows:
                    chunk_last = max(c.lines[-1] if c.lines else 0, c.rows[-1].line if c.rows else 0)
                    before = pending
                    task = asyncio.create_task(applier.apply(c, before[0] if before else None))
                    tasks.append(task)
                    pending = (task, chunk_last)
                    await settle(before)
                    tasks = [t for t in tasks if not t.done()]
                    for _ in range(4):  # let the request reach the store before parsing on
                        await asyncio.sleep(0)
                if progress is not None:
                    progress("applying", f.read)
            await settle(pending)
            pending = None
        finally:
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await store._end_write()
    return report
