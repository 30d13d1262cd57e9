"""In-process cache of IMEI-level entries, invalidated from the store's change feed.

The cache holds, per 14-digit IMEI key, the store's encoded value of its IMEI-level entries (``codec``;
"" caches "not listed"), decoded again on each hit. Decisions are recomputed from it and the in-memory
rule index, so expiry and rule changes stay exact. Eviction is FIFO over insertion order, bounded by
``max_size``.

Why strings and not entry objects: a dict of strings is never tracked by CPython's cyclic garbage
collector, while 100k cached tuples of entries were (measured: 10-35 ms collections of the youngest
generation every second or so while the cache filled, the largest part of the EIR's p99 latency).

``epoch`` increases on every invalidation; the service stores a lookup result only if no invalidation
happened while the lookup was in flight, so a concurrent change can never be cached over.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

__all__ = ["EntryCache"]


class EntryCache:
    """Bounded map IMEI key -> encoded IMEI-level entries ("" = none)."""

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self._data: dict[str, str] = {}
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
        data = self._data
        for k, v in items:
            data[k] = v
        over = len(data) - self.max_size
        if over > 0:  # the oldest ``over`` keys: O(over), never a copy of the whole map
            for k in list(islice(data, over)):
                del data[k]

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Forget the keys (all keys when None)."""
        self.epoch += 1
        if keys is None:
            self._data.clear()
            return
        for k in keys:
            self._data.pop(k, None)

    def __len__(self) -> int:
        return len(self._data)
