"""The embedded in-process store (``memory://`` or ``memory://PATH``), so everything runs without Redis.

It holds the same compact encoded values as the Redis store (``codec``), keyed by the IMEI key as an
int. With a path, the register is loaded from and saved to that file (format below); writers take an
exclusive ``flock`` on ``PATH.lock`` for a group of writes, reload the file if another process changed
it, and save atomically (write + rename) at the end. Readers (a running EIR) poll the file's mtime
every 0.2 s and resync when it changes, so changes by any writer reach them within a second.

File format (text, one record a line)::

    #eirlab-register 1
    P <id> <reporter name>          reporter interning table
    U <rule JSON>                   a range, TAC or TAC+SVN rule
    <IMEI key> <encoded value>      IMEI-level entries of one IMEI (see codec)

The audit trail is a deque capped at ``audit_max`` records, appended to ``PATH.audit.jsonl`` if a path
is set.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import IO

from eir.register.audit import AuditRecord
from eir.register.store import Change, Store, StoreConfigError, rule_from_text

__all__ = ["MemoryStore"]

_HEADER = "#eirlab-register 1"
POLL_SECONDS = 0.2


class MemoryStore(Store):
    """Everything in process memory; optionally persisted to a file."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, audit_max: int = 100_000) -> None:
        super().__init__()
        self.path = Path(path) if path else None
        self.url = f"memory://{self.path or ''}"
        self._values: dict[int, str] = {}
        self._rules: dict[str, str] = {}
        self._audit: deque[AuditRecord] = deque(maxlen=audit_max)
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self._mtime: float | None = None
        self._lock_file: IO[str] | None = None
        self._depth = 0
        self._dirty = False
        if self.path is not None and self.path.exists():
            self._load()

    # ---- file persistence --------------------------------------------------------------------
    def _file_mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime_ns if self.path else None
        except FileNotFoundError:
            return None

    def _load(self) -> None:
        assert self.path is not None
        values: dict[int, str] = {}
        rules: dict[str, str] = {}
        reporters: dict[int, str] = {}
        mtime = self._file_mtime()
        with self.path.open(encoding="utf-8") as f:
            first = f.readline().rstrip("\n")
            if first != _HEADER:
                raise StoreConfigError(f"memory store file {self.path}: not a register file (first line {first!r})")
            for lineno, line in enumerate(f, 2):
                tag, _, rest = line.rstrip("\n").partition(" ")
                try:
                    if tag == "U":
                        e = rule_from_text(rest)
                        rules[e.ident] = rest
                    elif tag == "P":
                        rid, _, name = rest.partition(" ")
                        reporters[int(rid)] = name
                    elif tag:
                        values[int(tag)] = rest
                except ValueError as exc:
                    raise StoreConfigError(f"memory store file {self.path} line {lineno}: {exc}") from exc
        self._values, self._rules = values, rules
        self.reporters.by_id, self.reporters.by_name = {0: ""}, {"": 0}
        for rid_, name in reporters.items():
            self.reporters.add(rid_, name)
        self._mtime = mtime

    def _save(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(_HEADER + "\n")
            for rid, name in self.reporters.by_id.items():
                if rid:
                    f.write(f"P {rid} {name}\n")
            for text in self._rules.values():
                f.write(f"U {text}\n")
            f.writelines(f"{k} {v}\n" for k, v in self._values.items())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._mtime = self._file_mtime()
        self._dirty = False

    async def _begin_write(self) -> None:
        self._depth += 1
        if self._depth > 1 or self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path.with_name(self.path.name + ".lock"), "w")  # noqa: SIM115
        await asyncio.to_thread(fcntl.flock, self._lock_file.fileno(), fcntl.LOCK_EX)
        if self._file_mtime() != self._mtime and self.path.exists():
            self._load()

    async def _end_write(self) -> None:
        self._depth -= 1
        if self._depth > 0 or self.path is None:
            return
        try:
            if self._dirty:
                self._save()
        finally:
            if self._lock_file is not None:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def _notify(self, change: Change) -> None:
        self._dirty = True
        for q in self._subscribers:
            q.put_nowait(change)

    # ---- primitives --------------------------------------------------------------------------
    async def _read_values(self, keys: Sequence[str]) -> list[str | None]:
        get = self._values.get
        return [get(int(k)) for k in keys]

    async def _cas_values(self, ops: Sequence[tuple[str, str | None, str | None]], change: str) -> list[int]:
        failed: list[int] = []
        changed: list[str] = []
        for i, (key, expected, new) in enumerate(ops):
            k = int(key)
            if self._values.get(k) != expected:
                failed.append(i)
                continue
            if new is None:
                self._values.pop(k, None)
            else:
                self._values[k] = new
            changed.append(key)
        if changed:
            self._notify(Change(frozenset(changed) if change != "*" else None))
        return failed

    async def _read_rules(self) -> dict[str, str]:
        return dict(self._rules)

    async def _read_rule(self, ident: str) -> str | None:
        return self._rules.get(ident)

    async def _cas_rule(self, ident: str, expected: str | None, new: str | None) -> bool:
        if self._rules.get(ident) != expected:
            return False
        if new is None:
            self._rules.pop(ident, None)
        else:
            self._rules[ident] = new
        self._notify(Change(frozenset(), rules=True))
        return True

    async def _intern(self, name: str) -> int:
        rid = self.reporters.by_name.get(name)
        if rid is None:
            rid = max(self.reporters.by_id) + 1
            self.reporters.add(rid, name)
            self._dirty = True
        return rid

    async def _load_reporters(self) -> None:
        return None

    async def _scan_values(self) -> AsyncIterator[list[tuple[str, str]]]:
        items = list(self._values.items())
        for i in range(0, len(items), 10_000):
            yield [(f"{k:014d}", v) for k, v in items[i:i + 10_000]]

    async def watch(self) -> AsyncGenerator[Change, None]:
        q: asyncio.Queue[Change] = asyncio.Queue()
        self._subscribers.add(q)
        try:
            yield Change(None, rules=True)
            while True:
                try:
                    yield await asyncio.wait_for(q.get(), POLL_SECONDS)
                except TimeoutError:
                    if self.path is not None and self._depth == 0 and self._file_mtime() != self._mtime:
                        if self.path.exists():
                            self._load()
                        yield Change(None, rules=True)
                    else:
                        yield Change(frozenset())  # heartbeat
        finally:
            self._subscribers.discard(q)

    async def audit_append(self, records: Sequence[AuditRecord]) -> None:
        self._audit.extend(records)
        if self.path is not None:
            with self.path.with_name(self.path.name + ".audit.jsonl").open("a", encoding="utf-8") as f:
                f.writelines(json.dumps(r.as_dict()) + "\n" for r in records)

    async def audit_export(self) -> AsyncIterator[AuditRecord]:
        if self.path is not None:
            p = self.path.with_name(self.path.name + ".audit.jsonl")
            if p.exists():
                with p.open(encoding="utf-8") as f:
                    for line in f:
                        yield AuditRecord.from_dict(json.loads(line))
                return
        for r in list(self._audit):
            yield r

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        """Nothing to release: every group of writes already saved the file."""

    async def stats(self) -> dict[str, int]:
        return {"imei_keys": len(self._values), "rules": len(self._rules), "reporters": len(self.reporters.by_id) - 1}

    def clear(self) -> None:
        """Drop everything (tests and benchmarks)."""
        self._values.clear()
        self._rules.clear()
        self._notify(Change(None, rules=True))
