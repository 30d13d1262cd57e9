"""The store interface shared by the Redis and embedded stores (issue 4 "One store interface").

A store keeps two kinds of data:

* IMEI-level entries (IMEI, IMEI+IMSI): possibly hundreds of millions, read per request batch with
  :meth:`Store.lookup` (one round trip for the whole batch), stored compactly (see ``codec``);
* rules (ranges, TACs, TAC+SVN rules): thousands, read whole with :meth:`Store.rules` and indexed in
  process memory by the decision service, reloaded when :meth:`Store.watch` reports a change.

Concrete stores implement a few primitives (read values, compare-and-set values, rules, reporters,
change feed, audit); the list semantics (replace by identity, the GSMA rule that only the reporting
organisation may change or remove its entry unless forced, batched imports) live here once.
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass

from eir.register.audit import AuditRecord
from eir.register.codec import Reporters, decode_value, encode_value, verify_value
from eir.register.model import Entry, EntryError, Granularity, Reason, Status

__all__ = [
    "Change",
    "EntryNotFound",
    "ImportConflict",
    "OwnershipError",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "rule_from_text",
    "rule_to_text",
    "same_content",
]

CAS_RETRIES = 8


class StoreError(Exception):
    """Base of the store's typed errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; nothing was written. The caller may retry later."""


class StoreConfigError(StoreError, ValueError):
    """A store URL or option is wrong: the message names the key and the reason."""


class OwnershipError(StoreError):
    """Only the reporting organisation may change or remove its entry unless forced (GSMA rule)."""

    def __init__(self, existing: Entry, by: str) -> None:
        super().__init__(f"{existing.ident} belongs to {existing.reporter!r}, not {by!r} (use force to override)")
        self.existing = existing
        self.by = by


class EntryNotFound(StoreError, KeyError):
    """No entry with that identity."""

    def __str__(self) -> str:
        return f"no entry {self.args[0]}"


@dataclass(frozen=True, slots=True)
class ImportConflict:
    """An entry of a batch that was not applied, with why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Change:
    """A change notification: ``keys`` None means "anything may have changed" (resync)."""

    keys: frozenset[str] | None = None
    rules: bool = False
    lost: bool = False  # the feed was interrupted: caches cannot be trusted until it resumes or resyncs
    #: The feed is back after ``lost`` and every change made meanwhile has been yielded (as keyed changes):
    #: what followers held is current again.
    resumed: bool = False

    @property
    def heartbeat(self) -> bool:
        """Nothing changed (the feed yields these at least every second so followers can stop)."""
        return self.keys is not None and not self.keys and not self.rules and not self.lost and not self.resumed


def rule_to_text(e: Entry) -> str:
    """Encode a rule entry (range, TAC, TAC+SVN) as compact JSON."""
    d: dict[str, object] = {"g": e.granularity.value, "k": e.key, "s": e.status.value, "r": e.reason.value,
                            "o": e.reporter, "c": e.created}
    if e.expires is not None:
        d["x"] = e.expires
    if e.last is not None:
        d["l"] = e.last
    if e.svns:
        d["v"] = sorted(e.svns)
    return json.dumps(d, separators=(",", ":"))


def rule_from_text(text: str) -> Entry:
    try:
        d = json.loads(text)
        return Entry(Granularity(d["g"]), d["k"], Status(d["s"]), Reason(d["r"]), d["o"], int(d["c"]),
                     d.get("x"), None, d.get("l"), frozenset(d["v"]) if "v" in d else None)
    except (ValueError, KeyError, TypeError) as exc:
        raise EntryError(f"corrupt stored rule {text!r}: {exc}") from exc


def same_content(a: Entry, b: Entry) -> bool:
    """Equal but for the creation time: re-adding such an entry changes nothing (idempotent imports)."""
    return a.with_(created=b.created) == b


def _split_ident(ident: str) -> tuple[str, str, str | None]:
    parts = ident.split(":")
    if len(parts) < 2 or parts[0] not in ("imei", "range", "tac"):
        raise EntryError(f"entry identity {ident!r} is not imei:KEY[:IMSI], range:FIRST:LAST or tac:TAC[:SVNS]")
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


#: A change entry lists the changed IMEI keys up to this many; beyond, it says "*" (everything changed). As many
#: as an import chunk holds (``importer.IMPORT_CHUNK``): an import then invalidates the IMEIs it wrote, not
#: every cached value and every replica of the register (which then reloaded after each chunk). Such an entry
#: is up to 75 KB; the Redis store keeps fewer of them (``redis_store.CHANGES_MAXLEN_BULK``).
CHANGE_KEYS_MAX = 5_000
#: A change naming more IMEIs than this is a bulk change (an import's chunk): the Redis store caps its stream
#: shorter after one, and a follower passes the event loop after applying one.
BULK_CHANGE_KEYS = 1_000


def change_of(keys: Sequence[str]) -> str:
    """The change-feed entry for a write of ``keys``."""
    return ",".join(keys) if len(keys) <= CHANGE_KEYS_MAX else "*"


class Store(abc.ABC):
    """One register store. Every method may raise :class:`StoreUnavailable`."""

    url: str

    def __init__(self) -> None:
        self.reporters = Reporters()

    # ---- primitives the concrete stores implement ------------------------------------------------
    @abc.abstractmethod
    async def _read_values(self, keys: Sequence[str]) -> list[str | None]:
        """Encoded IMEI-level values for the keys, in one round trip."""

    @abc.abstractmethod
    async def _cas_values(self, ops: Sequence[tuple[str, str | None, str | None]], change: str) -> list[int]:
        """For each (key, expected, new): set (delete when new is None) if the value is still
        ``expected``; return the indices that did not match. Publishes ``change`` if anything changed."""

    @abc.abstractmethod
    async def _read_rules(self) -> dict[str, str]:
        """All rules: ident -> rule text."""

    async def _read_rule(self, ident: str) -> str | None:
        """One rule's text (stores override this to avoid reading them all)."""
        return (await self._read_rules()).get(ident)

    @abc.abstractmethod
    async def _cas_rule(self, ident: str, expected: str | None, new: str | None) -> bool:
        """Compare-and-set one rule; publishes a rules change."""

    @abc.abstractmethod
    async def _intern(self, name: str) -> int:
        """Id of a reporter name, allocating one if new."""

    @abc.abstractmethod
    async def _load_reporters(self) -> None:
        """Refresh :attr:`reporters` from the store."""

    @abc.abstractmethod
    def _scan_values(self) -> AsyncIterator[list[tuple[str, str]]]:
        """All (key, encoded value) pairs, in chunks."""

    @abc.abstractmethod
    def watch(self) -> AsyncGenerator[Change, None]:
        """Change feed: yields a resync Change first, then changes made by any writer."""

    @abc.abstractmethod
    async def audit_append(self, records: Sequence[AuditRecord]) -> None:
        """Append decisions to the audit trail (capped)."""

    @abc.abstractmethod
    def audit_export(self) -> AsyncIterator[AuditRecord]:
        """The audit trail, oldest first."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the embedded store saves its file."""

    @abc.abstractmethod
    async def stats(self) -> dict[str, int]:
        """Counts and, for Redis, memory figures."""

    async def _begin_write(self) -> None:  # noqa: B027 - optional hook, a no-op for most stores
        """Hook: a group of writes starts (the embedded store locks and reloads its file)."""

    async def _end_write(self) -> None:  # noqa: B027 - optional hook, a no-op for most stores
        """Hook: a group of writes ends (the embedded store saves its file)."""

    # ---- shared semantics ---------------------------------------------------------------------
    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _decode(self, key: str, value: str) -> tuple[Entry, ...]:
        return decode_value(key, value, self.reporters)

    async def lookup(self, keys: Sequence[str]) -> list[tuple[Entry, ...]]:
        """IMEI-level entries of each 14-digit key, in one round trip."""
        values = await self.lookup_values(keys)
        return [self.decode(k, v) for k, v in zip(keys, values, strict=True)]

    async def lookup_values(self, keys: Sequence[str]) -> list[str]:
        """The stored value of each key in one round trip ("" when nothing is listed), not decoded.

        A value returned here always decodes with :meth:`decode` (its reporters are known; a corrupt one
        raises EntryError here), so a cache can keep the compact string, which the garbage collector never
        has to walk, instead of entry objects; and a front end that needs only the status of a plain entry
        (:func:`~eir.register.codec.plain_status`) never builds one.
        """
        values = ["" if v is None else v for v in await self._read_values(keys)]

        def verify() -> None:
            for k, v in zip(keys, values, strict=True):
                if v:
                    verify_value(k, v, self.reporters)

        try:
            verify()
        except LookupError:  # a reporter interned by another writer since we loaded the table
            await self._load_reporters()
            verify()
        return values

    async def scan_values(self) -> AsyncIterator[list[tuple[str, str | None]]]:
        """Every IMEI key's stored value, in chunks (to load a replica): each value checked as
        :meth:`lookup_values` checks it, None for one that cannot be decoded (corrupt), which a replica
        must not hold; :meth:`lookup_values` then reports it as for any other reader."""
        await self._load_reporters()
        good: set[str] = set()  # plain entries: a few hundred distinct values, each checked once
        async for chunk in self._scan_values():
            out: list[tuple[str, str | None]] = []
            for k, v in chunk:
                if v not in good:
                    try:
                        try:
                            verify_value(k, v, self.reporters)
                        except LookupError:  # a reporter interned by another writer since we loaded them
                            await self._load_reporters()
                            verify_value(k, v, self.reporters)
                    except (LookupError, EntryError):
                        out.append((k, None))
                        continue
                    if v.isdigit():
                        good.add(v)
                out.append((k, v))
            yield out

    def decode(self, key: str, value: str) -> tuple[Entry, ...]:
        """Entries of a value returned by :meth:`lookup_values` ("" is no entry)."""
        return self._decode(key, value) if value else ()

    async def rules(self) -> list[Entry]:
        """All range, TAC and TAC+SVN entries."""
        return [rule_from_text(t) for t in (await self._read_rules()).values()]

    async def reporter_ids(self, names: Iterable[str]) -> dict[str, int]:
        """The interned id of each reporter name (allocated in the store for new names)."""
        return await self._rid_map(names)

    async def add_new_values(self, keys: Sequence[str], values: Sequence[str], *,
                             after: Awaitable[object] | None = None) -> list[int]:
        """Bulk import's fast path: give each key its encoded value where the key has none yet, in one
        round trip; return the indices of the keys that already had a value (left untouched, for the
        caller to merge through :meth:`put_many`). Publishes one change.

        ``after`` (the previous chunk's work) is awaited once the request is built and before the store
        is touched: the client prepares a chunk while the store still applies the one before.
        """
        change = change_of(keys)
        ops: list[tuple[str, str | None, str | None]] = [(k, None, v) for k, v in zip(keys, values, strict=True)]
        if after is not None:
            await after
        return await self._cas_values(ops, change)

    async def _rid_map(self, names: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in set(names):
            rid = self.reporters.by_name.get(n)
            if rid is None:
                rid = await self._intern(n)
                self.reporters.add(rid, n)
            out[n] = rid
        return out

    async def put(self, entry: Entry, *, force: bool = False) -> Entry | None:
        """Add or replace the entry with the same identity; return the replaced one.

        Raises :class:`OwnershipError` if the existing entry has another reporter and not ``force``.
        """
        await self._begin_write()
        try:
            if entry.is_rule:
                return await self._put_rule(entry, force)
            conflicts, replaced = await self._apply_imei([entry], force)
            if conflicts:
                raise conflicts[0][1]
            return replaced[0] if replaced else None
        finally:
            await self._end_write()

    async def _put_rule(self, entry: Entry, force: bool) -> Entry | None:
        for _ in range(CAS_RETRIES):
            current = await self._read_rule(entry.ident)
            old = rule_from_text(current) if current else None
            if old is not None and old.reporter != entry.reporter and not force:
                raise OwnershipError(old, entry.reporter)
            if old is not None and same_content(old, entry):
                return old
            if await self._cas_rule(entry.ident, current, rule_to_text(entry)):
                return old
        raise StoreUnavailable(f"{entry.ident}: too many concurrent changes, not written")

    async def _apply_imei(self, entries: Sequence[Entry], force: bool, *, remove: bool = False,
                          reporter: str = "") -> tuple[list[tuple[int, OwnershipError | EntryNotFound]], list[Entry]]:
        """Merge IMEI-level entries (or removals) into the store with compare-and-set; returns the
        conflicts (index, error) and the entries replaced or removed."""
        await self._rid_map([e.reporter for e in entries] + [reporter])
        rid = self.reporters.by_name.__getitem__  # every decoded reporter is in the table too
        pending = list(range(len(entries)))
        conflicts: list[tuple[int, OwnershipError | EntryNotFound]] = []
        replaced: list[Entry] = []
        optimistic = not remove and len(entries) > 1  # batches: assume new keys, read only on CAS failure
        for _ in range(CAS_RETRIES):
            keys = list(dict.fromkeys(entries[i].key for i in pending))
            if optimistic:
                current: dict[str, str | None] = dict.fromkeys(keys)
                optimistic = False
            else:
                current = dict(zip(keys, await self._read_values(keys), strict=True))
            merged: dict[str, dict[str, Entry]] = {}
            owners: dict[str, list[int]] = {}
            round_replaced: list[Entry] = []
            round_conflicts: list[tuple[int, OwnershipError | EntryNotFound]] = []
            for i in pending:
                e = entries[i]
                if not remove and current[e.key] is None and e.key not in merged:  # fast path: a new key
                    merged[e.key] = {e.ident: e}
                    owners[e.key] = [i]
                    continue
                if e.key not in merged:
                    cur = current[e.key]
                    try:
                        old_entries = self._decode(e.key, cur) if cur else ()
                    except LookupError:
                        await self._load_reporters()
                        old_entries = self._decode(e.key, cur) if cur else ()
                    merged[e.key] = {x.ident: x for x in old_entries}
                bucket = merged[e.key]
                old = bucket.get(e.ident)
                who = reporter if remove else e.reporter
                if old is None and remove:
                    round_conflicts.append((i, EntryNotFound(e.ident)))
                    continue
                if old is not None and old.reporter != who and not force:
                    round_conflicts.append((i, OwnershipError(old, who)))
                    continue
                if old is not None:
                    round_replaced.append(old)
                if remove:
                    del bucket[e.ident]
                elif old is None or not same_content(old, e):
                    bucket[e.ident] = e
                owners.setdefault(e.key, []).append(i)
            ops = [(k, current[k], encode_value(merged[k].values(), rid)) for k in owners]
            ops = [op for op in ops if op[1] != op[2]]
            change = change_of([k for k, _, _ in ops])
            failed = await self._cas_values(ops, change) if ops else []
            failed_keys = {ops[j][0] for j in failed}
            conflicts.extend(c for c in round_conflicts if entries[c[0]].key not in failed_keys)
            replaced.extend(x for x in round_replaced if x.key not in failed_keys)
            pending = [i for i in pending if entries[i].key in failed_keys]
            if not pending:
                return conflicts, replaced
        raise StoreUnavailable(f"{len(pending)} entries: too many concurrent changes, not written")

    async def put_many(self, entries: Sequence[Entry], *, force: bool = False) -> list[ImportConflict]:
        """Apply a batch (an import chunk): IMEI-level entries in two round trips, rules one by one.

        Returns the entries not applied and why; everything else was written.
        """
        out: list[ImportConflict] = []
        imei_idx = [i for i, e in enumerate(entries) if not e.is_rule]
        await self._begin_write()
        try:
            if imei_idx:
                conflicts, _ = await self._apply_imei([entries[i] for i in imei_idx], force)
                out.extend(ImportConflict(imei_idx[j], str(err)) for j, err in conflicts)
            for i, e in enumerate(entries):
                if e.is_rule:
                    try:
                        await self._put_rule(e, force)
                    except OwnershipError as err:
                        out.append(ImportConflict(i, str(err)))
        finally:
            await self._end_write()
        return sorted(out, key=lambda c: c.index)

    async def remove(self, ident: str, *, reporter: str, force: bool = False) -> Entry:
        """Remove the entry with this identity (``Entry.ident``); return it.

        Raises :class:`EntryNotFound`, or :class:`OwnershipError` if ``reporter`` is not its reporter
        and not ``force``.
        """
        kind, key, extra = _split_ident(ident)
        await self._begin_write()
        try:
            if kind != "imei":
                for _ in range(CAS_RETRIES):
                    current = await self._read_rule(ident)
                    if current is None:
                        raise EntryNotFound(ident)
                    old = rule_from_text(current)
                    if old.reporter != reporter and not force:
                        raise OwnershipError(old, reporter)
                    if await self._cas_rule(ident, current, None):
                        return old
                raise StoreUnavailable(f"{ident}: too many concurrent changes, not removed")
            probe = Entry(Granularity.IMEI_IMSI if extra else Granularity.IMEI, key, Status.WHITE, imsi=extra)
            conflicts, removed = await self._apply_imei([probe], force, remove=True, reporter=reporter)
            if conflicts:
                raise conflicts[0][1]
            return removed[0]
        finally:
            await self._end_write()

    async def entries_for(self, key: str) -> list[Entry]:
        """Every entry that concerns this IMEI key: its IMEI-level entries, covering ranges, its TAC."""
        own = list((await self.lookup([key]))[0])
        k = int(key)
        for r in await self.rules():
            if (r.granularity is Granularity.RANGE and int(r.key) <= k <= int(r.last or r.key)) or (
                r.granularity in (Granularity.TAC, Granularity.TAC_SVN) and r.key == key[:8]
            ):
                own.append(r)
        return own

    async def export(self) -> AsyncIterator[list[Entry]]:
        """Every entry, rules first, then IMEI-level entries in chunks."""
        yield sorted(await self.rules(), key=lambda e: e.ident)
        await self._load_reporters()
        async for chunk in self._scan_values():
            out: list[Entry] = []
            for k, v in chunk:
                out.extend(self._decode(k, v))
            yield out
