"""Duplicate request detection on (Origin-Host, End-to-End Id) (RFC 6733 §3, §5.5.4).

A request seen again within the window gets the answer we already sent (with the new Hop-by-Hop
Id), or is dropped while the first copy is still being processed; it never reaches the application
twice. Shared by every connection of a node, since a retransmission after failover (T bit) arrives
on another connection. Bounded both in time and in entries.

Entries are bytes, not tuples (key ``End-to-End Id (4 bytes) + Origin-Host``, value the answer, or b""
while pending): the garbage collector never tracks bytes, whereas two tuples per request kept for the
window had to be walked by every young-generation collection (measured in ``eir serve``: 10-20 ms pauses
every few seconds at 20k requests/s). They live in a :class:`~protocols.segmented.SegmentedMap` whose
segments each cover an eighth of the window and are dropped whole once all their entries are older than
the window (so an entry is kept for the window and at most an eighth more), for the same reason: an
``OrderedDict`` evicting one entry per request stalled the loop for ~18 ms whenever it rebuilt its table.

A new request would be looked up in every segment (nine dictionary probes into tables too big for the CPU's
caches: about a tenth of the EIR's work per request). Most peers number their End-to-End ids upwards (§3
suggests a counter), so the cache also keeps, per Origin-Host, the highest id recorded in each of the last two
*generations* (each at least as long as an entry can be kept, ``window`` plus one segment's span). Every
entry still kept was recorded in one of them, so an id above both maxima cannot be a duplicate and needs no
probe. Anything else (an id below, after a wrap at 2**32, or from a peer counting otherwise) is looked up as
before; the answer is always the same as without the shortcut.
"""

from __future__ import annotations

import struct

from protocols.segmented import SegmentedMap

__all__ = ["DuplicateCache"]

_E2E = struct.Struct(">I")
_SEGMENTS = 8
_PENDING = b""


class DuplicateCache:
    """Recently seen requests and, once answered, their encoded answers."""

    __slots__ = ("_entries", "_gen_start", "_generation", "_span", "_top", "_top_before", "max_entries", "window")

    def __init__(self, window: float = 30.0, max_entries: int = 200_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._span = window / _SEGMENTS
        # One more segment than the window needs: the oldest is dropped only when wholly expired.
        self._entries: SegmentedMap[bytes, bytes] = SegmentedMap(_SEGMENTS + 1,
                                                                 max(1, max_entries // (_SEGMENTS + 1)), float("-inf"))
        # Per Origin-Host, the highest End-to-End id recorded in this generation and in the one before.
        self._generation = window + self._span
        self._gen_start = float("-inf")
        self._top: dict[bytes, int] = {}
        self._top_before: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(origin_host: bytes, end_to_end: int) -> bytes:
        """The identity of a request (§5.5.4: Origin-Host and End-to-End Id), as the cache keys it."""
        return _E2E.pack(end_to_end) + origin_host

    def seen(self, key: bytes, now: float) -> bytes | None:
        """None for a new request (now recorded as pending); else the stored answer or b"" if pending."""
        self._expire(now)
        origin = key[4:]
        e2e = _E2E.unpack_from(key)[0]
        top = self._top.get(origin, -1)
        if e2e <= top or e2e <= self._top_before.get(origin, -1):
            entry = self._entries.get(key)
            if entry is not None:
                return entry
        if e2e > top:
            self._top[origin] = e2e
        self._entries.put(key, _PENDING, now)
        return None

    def answered(self, key: bytes, answer: bytes) -> None:
        self._entries.replace(key, answer)

    def forget(self, key: bytes) -> None:
        self._entries.pop(key)

    def _expire(self, now: float) -> None:
        if now - self._gen_start >= self._generation:
            self._top_before, self._top = self._top, {}
            self._gen_start = now
        entries = self._entries
        if now - entries.starts[-1] >= self._span:
            entries.rotate(now)
        last = entries.last
        while len(last) > 1 and last[0] < now - self.window:  # everything in it is older than the window
            entries.drop_oldest()
