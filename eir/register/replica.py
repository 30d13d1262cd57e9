"""A full in-process replica of the register's IMEI-level values, kept current by the store's change feed.

:class:`~eir.register.cache.EntryCache` remembers what the store answered; every other IMEI costs a store
round trip, and with requests drawn from a register of a million IMEIs most of them do (a Redis round
trip costs the EIR more CPU than deciding and answering, ``bench/redis_round_trip.py``). A replica holds
*every* IMEI-level value of the store, so an IMEI it does not hold is not listed: no round trip at all,
for listed and unlisted IMEIs alike. Memory: about 100-130 bytes per listed IMEI (14-digit key strings; the
values of plain entries, a few hundred distinct integers, are shared).

How it stays exact (the same change feed that keeps the cache coherent, ``Store.watch``):

1. A load starts only after the feed has resynced (:meth:`begin_load`), so every write after the
   position the feed reads from reaches :meth:`invalidate`; the load reads every value with
   ``Store.scan_values`` and is the replica from then on (:meth:`finish_load`).
2. A key invalidated during or after the load may hold a stale value: it is dropped and marked *unsure*,
   and an unsure key is a miss, fetched from the store like any cache miss; the fetched value settles it
   (:meth:`put_many`, unless another invalidation happened while it was in flight) and the checker also
   refreshes unsure keys in the background.
3. "Anything may have changed" (a resync, a write of more keys than a change entry names) drops the
   replica; it works as the bounded cache it extends until a new load completes. So does a change that
   leaves more held and unsure keys than ``max_entries`` (the register may have outgrown it). An import
   names the IMEIs of each chunk (``store.CHANGE_KEYS_MAX``), so it leaves the replica in place with those
   IMEIs unsure. While the feed is interrupted the checker does not use it; a feed that resumes replays
   what changed meanwhile (as in 2.), one that cannot resyncs (as here).

Until the first load completes, and whenever the register holds more than ``max_entries`` IMEI-level
values, this is exactly an :class:`EntryCache`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from eir.register.cache import EntryCache

__all__ = ["ReplicaCache", "ReplicaLoad"]

#: The replica's values are spread over this many dicts, by the key's hash. A dict of a million keys that grows
#: past its next size copies itself whole in one step, and every request waits meanwhile: measured 42 ms for
#: one insert at 1.4M keys, and a 122 ms stall of ``eir serve`` at 20k requests/s as an import's 500k IMEIs
#: settled into a replica of 1M. A 64th of that is under 2 ms.
_SEGMENTS = 64
_MASK = _SEGMENTS - 1
#: Keys to values, as :data:`_SEGMENTS` dicts.
Values = list[dict[str, str]]


def _segments() -> Values:
    return [{} for _ in range(_SEGMENTS)]


class ReplicaLoad:
    """One load in progress: values read so far and keys invalidated since it began."""

    __slots__ = ("aborted", "data", "too_big", "unsure")

    def __init__(self) -> None:
        self.data: Values = _segments()
        self.unsure: set[str] = set()
        self.aborted = False
        self.too_big = False


class ReplicaCache(EntryCache):
    """An :class:`EntryCache` that becomes a complete replica once a load has finished (see the module)."""

    def __init__(self, max_size: int = 100_000, max_entries: int = 5_000_000) -> None:
        super().__init__(max_size)
        self.max_entries = max_entries
        self._full: Values | None = None
        self._unsure: set[str] = set()
        self._unsettled: set[str] = set()
        #: Unsure keys in the order they became unsure, for :meth:`take_unsure` (may repeat a key, or hold one
        #: settled since: skipped when taken).
        self._queue: deque[str] = deque()
        self._load: ReplicaLoad | None = None
        #: Plain-entry values are a few hundred distinct integers: one string object each.
        self._values: dict[str, str] = {}
        self.loads = 0

    @property
    def complete(self) -> bool:
        """True while every IMEI-level value of the store is held (unsure keys aside)."""
        return self._full is not None

    @property
    def unsure_count(self) -> int:
        return len(self._unsure)

    @property
    def refresh_pending(self) -> bool:
        """Unsure keys wait to be taken by :meth:`take_unsure` (possibly only settled ones, skipped then)."""
        return bool(self._queue)

    def take_unsure(self, n: int) -> list[str]:
        """Up to ``n`` unsure keys to fetch in the background, oldest first (not those whose value cannot be
        decoded); give back with :meth:`requeue` those the fetch did not settle.

        A queue beside the set: iterating a set from which most keys have been settled (removed) walks its
        whole table for the few left, and did so ten times a second while an import's 500k IMEIs settled."""
        out: list[str] = []
        queue, unsure, unsettled = self._queue, self._unsure, self._unsettled
        while queue and len(out) < n:
            k = queue.popleft()
            if k in unsure and k not in unsettled:
                out.append(k)
        return out

    def requeue(self, keys: Iterable[str]) -> None:
        """Keys taken by :meth:`take_unsure` that are still unsure: fetched again later."""
        unsure, unsettled = self._unsure, self._unsettled
        self._queue.extend(k for k in keys if k in unsure and k not in unsettled)

    def unsettled(self, key: str) -> None:
        """``key``'s stored value cannot be decoded: leave it unsure, and to the checks that ask for it."""
        self._unsettled.add(key)

    # ---- the hot path --------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        full = self._full
        if full is None:
            return super().get(key)
        v = full[hash(key) & _MASK].get(key)
        if v is None:
            if key in self._unsure:
                self.misses += 1
                return None
            v = ""
        self.hits += 1
        return v

    def put_many(self, items: Iterable[tuple[str, str]], epoch: int) -> None:
        full = self._full
        if full is None:
            super().put_many(items, epoch)
            return
        if epoch != self.epoch:  # an invalidation while the values were in flight: they stay unsure
            return
        unsure, share = self._unsure, self._values.setdefault
        for k, v in items:
            if k in unsure:
                unsure.discard(k)
                if v:
                    full[hash(k) & _MASK][k] = share(v, v)
                else:
                    full[hash(k) & _MASK].pop(k, None)

    def invalidate(self, keys: Iterable[str] | None) -> None:
        if keys is None:
            super().invalidate(None)
            self._full = None
            self._unsure, self._unsettled, self._queue = set(), set(), deque()
            if self._load is not None:
                self._load.aborted = True
            return
        keys = tuple(keys)
        super().invalidate(keys)
        full, load = self._full, self._load
        if full is not None:
            for k in keys:
                full[hash(k) & _MASK].pop(k, None)
            self._unsure.update(keys)
            self._unsettled.difference_update(keys)
            self._queue.extend(keys)
            if sum(map(len, full)) + len(self._unsure) > self.max_entries:
                # The register may have outgrown the replica (an import of new IMEIs), and the unsure keys
                # would grow without bound: drop it; a load settles whether it still fits.
                self.invalidate(None)
                return
        if load is not None:
            data = load.data
            for k in keys:
                data[hash(k) & _MASK].pop(k, None)
            load.unsure.update(keys)

    # ---- loading -------------------------------------------------------------------------------
    def begin_load(self) -> ReplicaLoad:
        """Start a load (call it only while the change feed is followed); an earlier one is abandoned."""
        if self._load is not None:
            self._load.aborted = True
        self._load = ReplicaLoad()
        return self._load

    def add_loaded(self, load: ReplicaLoad, items: Iterable[tuple[str, str | None]]) -> None:
        """Values read by ``load``. Keys invalidated since it began stay out (they are unsure), and so do
        values that cannot be decoded (None: left to the store's lookup, which reports them)."""
        if load.aborted:
            return
        data, unsure, share = load.data, load.unsure, self._values.setdefault
        for k, v in items:
            if v is None:
                unsure.add(k)
            elif k not in unsure:
                data[hash(k) & _MASK][k] = share(v, v)
        if sum(map(len, data)) > self.max_entries:
            load.aborted = load.too_big = True
            load.data = _segments()

    def finish_load(self, load: ReplicaLoad) -> bool:
        """Make a completed load the replica; False if it was abandoned meanwhile (or too big)."""
        if load.aborted or load is not self._load:
            return False
        self._load = None
        self._full = load.data
        self._unsure = load.unsure
        self._unsettled = set()
        self._queue = deque(load.unsure)
        self._data.clear()  # the bounded cache's values are covered by the replica
        self.loads += 1
        return True

    def __len__(self) -> int:
        full = self._full
        return super().__len__() if full is None else sum(map(len, full))
