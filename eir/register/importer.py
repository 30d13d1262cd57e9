"""Bulk import of a CSV file into a store (issue 4 "Import of millions of rows").

* ``strict`` (the default): a first pass validates every row; if any row is bad nothing is applied and
  every bad row is reported with its line number and reason. Then a second pass applies the file.
* not strict: good rows are applied, bad rows are skipped and reported.

Either way the report says exactly what was applied. Import is idempotent (an entry replaces the
entry with the same identity), so a file interrupted by a store outage can simply be imported again;
``ImportInterrupted`` says up to which line the file was applied.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from eir.register.csvio import Row, RowError, read_rows
from eir.register.model import Status
from eir.register.store import ImportConflict, Store, StoreUnavailable

__all__ = ["ImportInterrupted", "ImportReport", "import_csv"]


class _Counting:
    """Iterate a text file's lines, counting characters read (for the progress bar)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.read = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            self.read += len(line)
            yield line


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
                     force: bool = False, strict: bool = True, chunk: int = 20_000,
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


async def _import(store: Store, path: Path, *, reporter: str, status: Status | None, force: bool, strict: bool,
                  chunk: int, progress: Callable[[str, int], None] | None) -> ImportReport:
    report = ImportReport()
    if strict:
        with path.open(newline="", encoding="utf-8") as raw:
            counted = _Counting(raw)
            for rows, bad in read_rows(counted, reporter=reporter, status=status, chunk=chunk):
                report.rows += len(rows) + len(bad)
                report.bad.extend(bad)
                if progress is not None:
                    progress("validating", counted.read)
        if report.bad:
            report.applied_nothing = True
            return report
        report.rows = 0
    last_line = 1
    # One chunk is applied while the next is parsed: the store works (Redis runs the script) while this
    # process parses. Chunks are still applied in file order, one at a time.
    pending: tuple[asyncio.Task[list[ImportConflict]], list[Row]] | None = None

    async def settle() -> None:
        nonlocal pending, last_line
        if pending is None:
            return
        task, rows = pending
        pending = None
        try:
            conflicts = await task
        except StoreUnavailable as exc:
            raise ImportInterrupted(last_line, report, str(exc)) from exc
        report.conflicts.extend(RowError(rows[c.index].line, c.reason) for c in conflicts)
        report.applied += len(rows) - len(conflicts)
        last_line = rows[-1].line

    await store._begin_write()  # one write group: the embedded store saves its file once, at the end
    with path.open(newline="", encoding="utf-8") as raw:
        f = _Counting(raw)
        try:
            for rows, bad in read_rows(f, reporter=reporter, status=status, chunk=chunk):
                report.rows += len(rows) + len(bad)
                report.bad.extend(bad)
                await settle()
                if rows:
                    pending = (asyncio.create_task(store.put_many([r.entry for r in rows], force=force)), rows)
                    for _ in range(4):  # let the request reach the store before parsing on
                        await asyncio.sleep(0)
                if progress is not None:
                    progress("applying", f.read)
            await settle()
        finally:
            if pending is not None:
                pending[0].cancel()
            await store._end_write()
    return report
