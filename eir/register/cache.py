"""In-process cache of IMEI-level entries, invalidated from the store's change feed.

The cache holds, per 14-digit IMEI key, the tuple of IMEI-level entries the store returned (an empty
tuple caches "not listed"). Decisions are recomputed from it and the in-memory rule index, so expiry
and rule changes stay exact. Eviction is FIFO over insertion order, bounded by ``max_size``.

``epoch`` increases on every invalidation; the service stores a lookup result only if no invalidation
happened while the lookup was in flight, so a concurrent change can never be cached over.
"""

from __future__ import annotations

from collections.abc import Iterable

from eir.register.model import Entry

__all__ = ["EntryCache"]


class EntryCache:
    """Bounded map IMEI key -> IMEI-level entries."""

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self._data: dict[str, tuple[Entry, ...]] = {}
        self.epoch = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[Entry, ...] | None:
        v = self._data.get(key)
        if v is None:
            self.misses += 1
        else:
            self.hits += 1
        return v

    def put_many(self, items: Iterable[tuple[str, tuple[Entry, ...]]], epoch: int) -> None:
        if epoch != self.epoch or self.max_size <= 0:
            return
        data = self._data
        for k, v in items:
            data[k] = v
        over = len(data) - self.max_size
        if over > 0:
            for k in list(data)[:over]:
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
