"""In-process cache of IMEI-level entries, invalidated from the store's change feed.

The cache holds, per 14-digit IMEI key, the store's encoded value of its IMEI-level entries (``codec``;
"" caches "not listed"), decoded again on each hit. Decisions are recomputed from it and the in-memory
rule index, so expiry and rule changes stay exact.

Eviction is first in, first out, a quarter of ``max_size`` at a time (:class:`protocols.segmented.
SegmentedMap`): a dict evicting its oldest key per insert costs a scan over the deleted slots at its
front (~50 µs per eviction at 100k entries, measured) and an ``OrderedDict`` a 10 ms table rebuild every
so often, both paid by the event loop that answers the MMEs.

Why strings and not entry objects: dicts of strings are never tracked by CPython's cyclic garbage
collector, while 100k cached tuples of entries were (measured: 10-35 ms collections of the youngest
generation every second or so while the cache filled, the largest part of the EIR's p99 latency).

``epoch`` increases on every invalidation; the service stores a lookup result only if no invalidation
happened while the lookup was in flight, so a concurrent change can never be cached over.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocols.segmented import SegmentedMap

__all__ = ["EntryCache"]

_SEGMENTS = 4


class EntryCache:
    """Bounded map IMEI key -> encoded IMEI-level entries ("" = none), at most about ``max_size`` keys."""

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self._data: SegmentedMap[str, str] = SegmentedMap(_SEGMENTS, max(1, max_size // _SEGMENTS))
        self.epoch = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> str | None:
        v = self._data.get(key)
        if v is None:
            self.misses += 1
        else:
            self.hits += 1
        return v

    def put_many(self, items: Iterable[tuple[str, str]], epoch: int) -> None:
        if epoch != self.epoch or self.max_size <= 0:
            return
        put = self._data.put
        for k, v in items:
            put(k, v)

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Forget the keys (all keys when None)."""
        self.epoch += 1
        if keys is None:
            self._data.clear()
            return
        for k in keys:
            self._data.pop(k)

    def __len__(self) -> int:
        return len(self._data)
