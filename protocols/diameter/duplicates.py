"""Duplicate request detection on (Origin-Host, End-to-End Id) (RFC 6733 §3, §5.5.4).

A request seen again within the window gets the answer we already sent (with the new Hop-by-Hop
Id), or is dropped while the first copy is still being processed; it never reaches the application
twice. Shared by every connection of a node, since a retransmission after failover (T bit) arrives
on another connection. Bounded both in time and in entries.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DuplicateCache"]

_PENDING = b""


class DuplicateCache:
    """Recently seen requests and, once answered, their encoded answers."""

    __slots__ = ("_entries", "max_entries", "window")

    def __init__(self, window: float = 30.0, max_entries: int = 200_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[bytes, int], tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, origin_host: bytes, end_to_end: int, now: float) -> bytes | None:
        """None for a new request (now recorded as pending); else the stored answer or b"" if pending."""
        self._expire(now)
        key = (origin_host, end_to_end)
        entry = self._entries.get(key)
        if entry is not None:
            return entry[1]
        self._entries[key] = (now, _PENDING)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return None

    def answered(self, origin_host: bytes, end_to_end: int, answer: bytes) -> None:
        key = (origin_host, end_to_end)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], answer)

    def forget(self, origin_host: bytes, end_to_end: int) -> None:
        self._entries.pop((origin_host, end_to_end), None)

    def _expire(self, now: float) -> None:
        entries = self._entries
        limit = now - self.window
        while entries:
            key, (seen_at, _) = next(iter(entries.items()))
            if seen_at >= limit:
                break
            del entries[key]
