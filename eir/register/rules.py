"""In-process index of the small rule collections: ranges, TACs and TAC+SVN rules.

Ranges are flattened into disjoint segments once (a sweep over the sorted boundaries with a heap of
the active ranges), each segment remembering the narrowest range covering it, so a lookup is one
``bisect`` (O(log n)) and never a scan. Nested ranges: the narrowest wins; equally wide overlapping
ranges: the most recently created wins, then the lowest first IMEI. TACs and TAC+SVN rules are dicts.

Expired entries are left out when the index is built; ``valid_until`` is the earliest expiry among the
entries kept, after which the holder rebuilds the index (:meth:`RuleIndex.stale`).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from eir.register.model import Entry, Granularity

__all__ = ["RuleIndex"]


@dataclass(slots=True)
class RuleIndex:
    """Ranges as disjoint segments + bisect, TAC dict, TAC+SVN dict; built from the rule entries."""

    starts: list[int] = field(default_factory=list)
    winners: list[Entry | None] = field(default_factory=list)
    tacs: dict[str, Entry] = field(default_factory=dict)
    tac_svns: dict[str, list[Entry]] = field(default_factory=dict)
    valid_until: float = math.inf
    size: int = 0

    @classmethod
    def build(cls, entries: Iterable[Entry], now: float) -> RuleIndex:
        idx = cls()
        ranges: list[Entry] = []
        for e in entries:
            if e.expired(now):
                continue
            if e.expires is not None:
                idx.valid_until = min(idx.valid_until, e.expires)
            idx.size += 1
            g = e.granularity
            if g is Granularity.RANGE:
                ranges.append(e)
            elif g is Granularity.TAC:
                idx.tacs[e.key] = e
            elif g is Granularity.TAC_SVN:
                idx.tac_svns.setdefault(e.key, []).append(e)
        for rules in idx.tac_svns.values():
            rules.sort(key=lambda r: -r.created)
        idx._build_segments(ranges)
        return idx

    def _build_segments(self, ranges: list[Entry]) -> None:
        if not ranges:
            return
        spans = [(int(r.key), int(r.last or r.key) + 1, r) for r in ranges]
        bounds = sorted({b for s, e, _ in spans for b in (s, e)})
        spans.sort(key=lambda t: t[0])
        heap: list[tuple[int, int, int, int, int]] = []  # (width, -created, first, seq, end)
        by_seq: list[Entry] = []
        i = 0
        for b in bounds:
            while i < len(spans) and spans[i][0] <= b:
                s, e, r = spans[i]
                heapq.heappush(heap, (e - s, -r.created, s, len(by_seq), e))
                by_seq.append(r)
                i += 1
            while heap and heap[0][4] <= b:
                heapq.heappop(heap)
            winner = by_seq[heap[0][3]] if heap else None
            if self.winners and self.winners[-1] is winner:
                continue  # merge adjacent segments with the same winner
            self.starts.append(b)
            self.winners.append(winner)

    def stale(self, now: float) -> bool:
        return now >= self.valid_until

    def range_for(self, key: int) -> Entry | None:
        """The narrowest range containing the IMEI key, if any."""
        i = bisect_right(self.starts, key) - 1
        return self.winners[i] if i >= 0 else None

    def svn_rule(self, tac: str, svn: str | None) -> Entry | None:
        if svn is None:
            return None
        for r in self.tac_svns.get(tac, ()):
            if r.svns is not None and svn in r.svns:
                return r
        return None

    def tac(self, tac: str) -> Entry | None:
        return self.tacs.get(tac)
