"""Strict import's first pass: validate a whole CSV file before anything is applied.

Validation is pure CPU and nothing can overlap it (not one row may be applied before the whole file is
known to be good), so a large file is validated by several processes, each taking a slice of the file
that starts and ends at a line boundary; bad rows keep their line numbers in the whole file. This is
only done when it is safe to cut the file at any newline: the file has no quote character, so no field
spans lines. Otherwise, and for small files, one pass in this process.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from eir.register.csvio import CountedLines, RowError, read_chunks
from eir.register.model import Status

__all__ = ["PARALLEL_MIN_BYTES", "validate_file"]

#: Below this size one process is faster than starting others.
PARALLEL_MIN_BYTES = 32 << 20
_BLOCK = 16 << 20


def _slices(path: Path, parts: int) -> list[tuple[int, int, int]] | None:
    """(start, end, newlines before start) of ``parts`` slices cut at newlines; None if the file has quotes."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as f:
        for i in range(1, parts):
            f.seek(size * i // parts)
            f.readline()
            pos = f.tell()
            if pos > cuts[-1] and pos < size:
                cuts.append(pos)
        cuts.append(size)
        newlines = [0]
        f.seek(0)
        pos, seen, k = 0, 0, 1
        while pos < size:
            block = f.read(_BLOCK)
            if b'"' in block:
                return None
            while k < len(cuts) - 1 and cuts[k] <= pos + len(block):
                seen_here = seen + block.count(b"\n", 0, cuts[k] - pos)
                newlines.append(seen_here)
                k += 1
            seen += block.count(b"\n")
            pos += len(block)
    return [(cuts[i], cuts[i + 1], newlines[i]) for i in range(len(cuts) - 1)]


def _lines(path: str, start: int, end: int) -> Iterator[str]:
    """The header, then the lines of bytes start..end (decoded one by one: nothing big in memory)."""
    with open(path, "rb") as f:
        header = f.readline()
        if start > 0:
            yield header.decode("utf-8")
            f.seek(start)
        else:
            f.seek(0)
        pos = start
        for raw in f:
            yield raw.decode("utf-8")
            pos += len(raw)
            if pos >= end:
                return


def _check_slice(path: str, start: int, end: int, lines_before: int, reporter: str, status: Status | None,
                 chunk: int) -> tuple[int, list[tuple[int, str]]]:
    """Validate one slice (in a worker process): (rows, [(line in the whole file, reason)])."""
    shift = lines_before - 1 if start > 0 else 0
    rows = 0
    bad: list[tuple[int, str]] = []
    for c in read_chunks(_lines(path, start, end), reporter=reporter, status=status, chunk=chunk, keep=False):
        rows += len(c)
        bad.extend((b.line + shift, b.reason) for b in c.bad)
    return rows, bad


def _serial(path: Path, reporter: str, status: Status | None, chunk: int,
            progress: Callable[[str, int], None] | None) -> tuple[int, list[RowError]]:
    rows = 0
    bad: list[RowError] = []
    with path.open(newline="", encoding="utf-8") as raw:
        counted = CountedLines(raw)
        for c in read_chunks(counted, reporter=reporter, status=status, chunk=chunk, keep=False):
            rows += len(c)
            bad.extend(c.bad)
            if progress is not None:
                progress("validating", counted.read)
    return rows, bad


async def validate_file(path: Path, *, reporter: str, status: Status | None, chunk: int,
                        progress: Callable[[str, int], None] | None = None,
                        workers: int | None = None) -> tuple[int, list[RowError]]:
    """(rows, bad rows in line order) of the whole file; raises ``CsvFormatError`` for a bad header."""
    workers = workers or min(4, os.cpu_count() or 1)
    size = path.stat().st_size
    slices = _slices(path, workers) if workers > 1 and size >= PARALLEL_MIN_BYTES else None
    if not slices or len(slices) < 2:
        return _serial(path, reporter, status, chunk, progress)
    # The header is checked here first, so a bad header fails at once with the usual error.
    with path.open(newline="", encoding="utf-8") as raw:
        next(read_chunks([raw.readline()], reporter=reporter, status=status), None)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(len(slices), mp_context=mp.get_context("spawn")) as pool:
        results = await asyncio.gather(*(
            loop.run_in_executor(pool, _check_slice, str(path), a, b, before, reporter, status, chunk)
            for a, b, before in slices))
    if progress is not None:
        progress("validating", size)
    rows = sum(n for n, _ in results)
    bad = [RowError(line, reason) for _, errs in results for line, reason in errs]
    return rows, bad
