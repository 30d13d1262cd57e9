"""Precedence of the decision (every level), nested ranges, expiry, pairing and SVN rules."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from eir.register.decision import Outcome
from eir.register.model import Entry, Granularity, Reason, Status
from eir.register.policy import Policy, decide
from eir.register.rules import RuleIndex

NOW = 1_800_000_000
KEY = "35209900176148"
IMSI = "208011234567890"


def _decide(imei_entries: list[Entry], rules: list[Entry], *, imsi: str | None = None, svn: str | None = None,
            key: str = KEY, policy: Policy | None = None, now: float = NOW) -> tuple[Outcome, Granularity | None,
                                                                                   Entry | None]:
    d = decide(key, imsi, svn, imei_entries, RuleIndex.build(rules, now), policy or Policy(), now)
    return d.outcome, d.matched, d.entry


PAIR = Entry.imei(KEY, Status.WHITE, imsi=IMSI, reporter="op", created=NOW - 10)
IMEI = Entry.imei(KEY, Status.BLACK, reason=Reason.STOLEN, reporter="op", created=NOW - 10)
RANGE = Entry.range("35209900000000", "35209900999999", Status.GREY, created=NOW - 10)
SVN = Entry.tac("35209900", Status.BLACK, svns=frozenset({"12", "13"}), created=NOW - 10)
TAC = Entry.tac("35209900", Status.WHITE, created=NOW - 10)


def test_each_level_in_order() -> None:
    rules = [RANGE, SVN, TAC]
    assert _decide([IMEI, PAIR], rules, imsi=IMSI, svn="12")[1:] == (Granularity.IMEI_IMSI, PAIR)
    assert _decide([IMEI, PAIR], rules, imsi="208019999999999", svn="12")[1:] == (Granularity.IMEI, IMEI)
    assert _decide([IMEI, PAIR], rules)[1:] == (Granularity.IMEI, IMEI)  # no IMSI: pairing never applies
    assert _decide([], rules, svn="12")[1:] == (Granularity.RANGE, RANGE)
    assert _decide([], [SVN, TAC], svn="12")[1:] == (Granularity.TAC_SVN, SVN)
    assert _decide([], [SVN, TAC], svn="14")[1:] == (Granularity.TAC, TAC)
    assert _decide([], [SVN, TAC])[1:] == (Granularity.TAC, TAC)
    assert _decide([], [])[:2] == (Outcome.UNKNOWN, None)


def test_default_status_for_unknown() -> None:
    out, matched, entry = _decide([], [], policy=Policy(Status.GREY))
    assert (out, matched, entry) == (Outcome.GREY, Granularity.DEFAULT, None)


def test_pairing_allows_a_blacklisted_device() -> None:
    for black in ([IMEI], []):
        rules = [] if black else [Entry.tac("35209900", Status.BLACK)]
        d = decide(KEY, IMSI, None, [*black, PAIR], RuleIndex.build(rules, NOW), Policy(), NOW)
        assert d.outcome is Outcome.BLACK_ALLOWED_BY_PAIRING
        assert d.status is Status.WHITE and d.entry == PAIR
    # a pairing of a non-blacklisted IMEI is a plain decision
    d = decide(KEY, IMSI, None, [PAIR], RuleIndex.build([], NOW), Policy(), NOW)
    assert d.outcome is Outcome.WHITE and d.matched is Granularity.IMEI_IMSI
    # a black pairing is black
    bp = PAIR.with_(status=Status.BLACK)
    assert decide(KEY, IMSI, None, [bp], RuleIndex.build([], NOW), Policy(), NOW).outcome is Outcome.BLACK


def test_expired_entries_are_ignored() -> None:
    expired = IMEI.with_(expires=NOW - 1)
    assert _decide([expired], [TAC])[1] is Granularity.TAC
    assert _decide([expired], [TAC.with_(expires=NOW)])[0] is Outcome.UNKNOWN
    assert _decide([IMEI.with_(expires=NOW + 1)], [])[1] is Granularity.IMEI


def test_nested_ranges_narrowest_wins() -> None:
    outer = Entry.range("35209900000000", "35209900999999", Status.WHITE, created=1)
    mid = Entry.range("35209900100000", "35209900199999", Status.GREY, created=1)
    inner = Entry.range("35209900150000", "35209900150099", Status.BLACK, created=1)
    idx = RuleIndex.build([inner, outer, mid], NOW)
    assert idx.range_for(35209900150050) == inner
    assert idx.range_for(35209900150100) == mid
    assert idx.range_for(35209900100000) == mid
    assert idx.range_for(35209900199999) == mid
    assert idx.range_for(35209900200000) == outer
    assert idx.range_for(35209900000000) == outer
    assert idx.range_for(35209900999999) == outer
    assert idx.range_for(35209901000000) is None
    assert idx.range_for(35209899999999) is None


def test_equal_width_overlap_most_recent_wins() -> None:
    a = Entry.range("35209900000000", "35209900000099", Status.WHITE, created=10)
    b = Entry.range("35209900000050", "35209900000149", Status.BLACK, created=20)
    idx = RuleIndex.build([a, b], NOW)
    assert idx.range_for(35209900000010) == a
    assert idx.range_for(35209900000060) == b
    assert idx.range_for(35209900000140) == b


def test_expiry_rebuild_falls_back_to_outer_range() -> None:
    outer = Entry.range("35209900000000", "35209900999999", Status.WHITE)
    inner = Entry.range("35209900000000", "35209900000009", Status.BLACK, expires=NOW + 5)
    idx = RuleIndex.build([outer, inner], NOW)
    assert idx.range_for(35209900000001) == inner and not idx.stale(NOW) and idx.stale(NOW + 5)
    assert RuleIndex.build([outer, inner], NOW + 5).range_for(35209900000001) == outer


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 60), st.integers(0, 5)), min_size=1, max_size=25),
       st.integers(0, 400))
def test_segments_agree_with_brute_force(spans: list[tuple[int, int, int]], probe: int) -> None:
    base = 35209900000000
    entries = [Entry.range(str(base + s), str(base + s + w), Status.BLACK, created=c, reporter=f"r{i}")
               for i, (s, w, c) in enumerate(spans)]
    containing = [e for e in entries if int(e.key) <= base + probe <= int(e.last or "0")]
    got = RuleIndex.build(entries, NOW).range_for(base + probe)
    if not containing:
        assert got is None
        return
    best = min(containing, key=lambda e: (e.width, -e.created, int(e.key)))
    assert got is not None
    assert (got.width, got.created) == (best.width, best.created)


def test_lookup_does_not_scan() -> None:
    """10k ranges: the index is segments + bisect, so a lookup touches O(log n) items."""
    rnd = random.Random(4)
    entries = []
    for _ in range(10_000):
        start = 35000000000000 + rnd.randrange(10**12)
        entries.append(Entry.range(str(start), str(start + rnd.randrange(1, 10**6)), Status.BLACK))
    idx = RuleIndex.build(entries, NOW)
    assert len(idx.starts) <= 2 * len(entries) + 1
    probes = 0

    class CountingList(list[int]):
        def __getitem__(self, i):  # type: ignore[no-untyped-def]
            nonlocal probes
            probes += 1
            return super().__getitem__(i)

    # bisect uses the C fast path on real lists; a subclass goes through __getitem__
    idx.starts = CountingList(idx.starts)
    idx.range_for(35000500000000)
    assert 1 <= probes <= 2 * 16
