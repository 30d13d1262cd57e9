"""A bounded map that forgets its oldest entries a segment at a time (sans-I/O; no clock of its own).

Why not a dict or ``OrderedDict`` evicting its oldest key per insert: a hash table that keeps losing
old keys while gaining new ones rebuilds its whole table every so often. At 100k-200k entries that is a
10-20 ms pause of the event loop (measured in ``eir serve``: the decision cache and the Diameter
duplicate-request cache each stalled it several times per 10 s at 20k requests/s). Here the newest
segment is a plain dict that only grows, to ``segment_size`` entries; then a new segment starts and, past
``segments`` of them, the oldest is dropped whole. No operation costs more than one growing segment's
resize, and a lookup costs at most ``segments`` dict probes.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["SegmentedMap"]

K = TypeVar("K")
V = TypeVar("V")


class SegmentedMap(Generic[K, V]):
    """Up to ``segments * segment_size`` entries; the newest value of a key wins; ``None`` is never a value."""

    __slots__ = ("_segs", "last", "segment_size", "segments", "starts")

    def __init__(self, segments: int, segment_size: int, start: float = 0.0) -> None:
        if segments < 1 or segment_size < 1:
            raise ValueError("segments and segment_size must be positive")
        self.segments = segments
        self.segment_size = segment_size
        self._segs: list[dict[K, V]] = [{}]
        #: When each segment was started and last written to (the caller's clock, for time-based expiry).
        self.starts: list[float] = [start]
        self.last: list[float] = [start]

    def get(self, key: K) -> V | None:
        segs = self._segs
        i = len(segs) - 1
        v = segs[i].get(key)  # newest first
        while v is None and i:
            i -= 1
            v = segs[i].get(key)
        return v

    def put(self, key: K, value: V, now: float = 0.0) -> None:
        newest = self._segs[-1]
        if len(newest) >= self.segment_size:  # before writing: the newest entry is never the one dropped
            self.rotate(now)
            newest = self._segs[-1]
        newest[key] = value
        self.last[-1] = now

    def replace(self, key: K, value: V) -> bool:
        """Change the value of a present key where it is (its age unchanged); False if absent."""
        for seg in reversed(self._segs):
            if key in seg:
                seg[key] = value
                return True
        return False

    def pop(self, key: K) -> None:
        for seg in self._segs:
            seg.pop(key, None)

    def rotate(self, now: float = 0.0) -> None:
        """Start a new segment; drop the oldest one beyond ``segments``."""
        self._segs.append({})
        self.starts.append(now)
        self.last.append(now)
        if len(self._segs) > self.segments:
            self.drop_oldest()

    def drop_oldest(self) -> None:
        if len(self._segs) == 1:
            self._segs[0] = {}
            return
        del self._segs[0]
        del self.starts[0]
        del self.last[0]

    def clear(self, now: float = 0.0) -> None:
        self._segs = [{}]
        self.starts = [now]
        self.last = [now]

    def __len__(self) -> int:
        """Entries held (a key written again while its older copy waits for its segment counts twice)."""
        return sum(len(s) for s in self._segs)

    def __contains__(self, key: K) -> bool:
        return self.get(key) is not None
