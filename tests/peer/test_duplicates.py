"""Duplicate requests on (Origin-Host, End-to-End) (RFC 6733 §3, §5.5.4): answered once, never twice to the app."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.diameter import base_rfc6733 as base
from protocols.diameter.duplicates import DuplicateCache
from protocols.diameter.events import DuplicateRequest, RequestReceived
from protocols.diameter.message import FLAG_RETRANSMIT
from protocols.segmented import SegmentedMap

from .helpers import EIR, Pair, config, eca, ecr, encode_message, messages, types, with_duplicates


def dup_pair(cache: DuplicateCache) -> Pair:
    return Pair.make(server_cfg=with_duplicates(config(EIR), cache))


def send_raw(pair: Pair, msg_hbh: int, e2e: int, now: float, imei: str = "49015420323751") -> list[object]:
    m = ecr(imei, e2e=e2e)
    m.hop_by_hop = msg_hbh
    return list(pair.server.receive_data(encode_message(m), now))


def test_answered_duplicate_gets_the_stored_answer_with_the_new_hop_by_hop() -> None:
    cache = DuplicateCache(window=30.0)
    pair = dup_pair(cache)
    (first,) = send_raw(pair, 100, 0x777, 1.0)
    assert isinstance(first, RequestReceived)
    answer = eca(first.message, status=1)
    pair.server.send_answer(answer, first.message)
    original = pair.server.data_to_send()
    events = send_raw(pair, 200, 0x777, 2.0)
    assert events == [DuplicateRequest(events[0].message, True)]  # type: ignore[attr-defined]
    resent = pair.server.data_to_send()
    assert resent[:12] == original[:12] and resent[16:] == original[16:]
    (m,) = messages(resent)
    assert m.hop_by_hop == 200 and m.end_to_end == 0x777
    assert pair.server.incoming_pending == 0  # the duplicate never reached the app


def test_t_bit_retransmission_is_a_duplicate_too() -> None:
    cache = DuplicateCache()
    pair = dup_pair(cache)
    (first,) = send_raw(pair, 1, 5, 0.0)
    pair.server.send_answer(eca(first.message), first.message)  # type: ignore[attr-defined]
    pair.server.data_to_send()
    m = ecr(e2e=5)
    m.hop_by_hop = 2
    m.flags |= FLAG_RETRANSMIT
    assert types(pair.server.receive_data(encode_message(m), 1.0)) == ["DuplicateRequest"]


def test_duplicate_while_first_pending_is_dropped() -> None:
    pair = dup_pair(DuplicateCache())
    (first,) = send_raw(pair, 1, 9, 0.0)
    assert isinstance(first, RequestReceived)
    events = send_raw(pair, 2, 9, 0.5)
    assert len(events) == 1 and isinstance(events[0], DuplicateRequest) and not events[0].answered
    assert pair.server.data_to_send() == b""
    assert pair.server.incoming_pending == 1


def test_different_origin_or_e2e_is_not_a_duplicate() -> None:
    pair = dup_pair(DuplicateCache())
    assert types(send_raw(pair, 1, 9, 0.0)) == ["RequestReceived"]
    assert types(send_raw(pair, 2, 10, 0.0)) == ["RequestReceived"]
    other = ecr(e2e=9)
    other.avps = [a for a in other.avps if a.code != base.ORIGIN_HOST.code]
    other.avps.insert(2, other.avps[0].__class__(base.ORIGIN_HOST.code, 0x40, 0, b"mme2.example.org"))
    other.hop_by_hop = 3
    assert types(pair.server.receive_data(encode_message(other), 0.0)) == ["RequestReceived"]


def test_entries_expire_after_the_window() -> None:
    cache = DuplicateCache(window=10.0)
    pair = dup_pair(cache)
    (first,) = send_raw(pair, 1, 9, 0.0)
    pair.server.send_answer(eca(first.message), first.message)  # type: ignore[attr-defined]
    pair.server.data_to_send()
    assert types(send_raw(pair, 2, 9, 10.0)) == ["DuplicateRequest"]  # still inside the window
    assert types(send_raw(pair, 3, 9, 10.5)) == ["RequestReceived"]  # expired: new again


def test_cache_unit_behaviour() -> None:
    cache = DuplicateCache(window=5.0, max_entries=3)
    assert cache.seen(DuplicateCache.key(b"a", 1), 0.0) is None
    assert cache.seen(DuplicateCache.key(b"a", 1), 1.0) == b""  # pending
    cache.answered(DuplicateCache.key(b"a", 1), b"ANSWER")
    assert cache.seen(DuplicateCache.key(b"a", 1), 2.0) == b"ANSWER"
    cache.answered(DuplicateCache.key(b"zz", 1), b"x")  # unknown: ignored
    assert len(cache) == 1
    cache.forget(DuplicateCache.key(b"a", 1))
    assert cache.seen(DuplicateCache.key(b"a", 1), 3.0) is None


def test_cache_is_bounded_in_size() -> None:
    cache = DuplicateCache(window=1e9, max_entries=100)
    for i in range(1000):
        assert cache.seen(DuplicateCache.key(b"h", i), float(i)) is None
        assert len(cache) <= 100
    assert cache.seen(DuplicateCache.key(b"h", 999), 1000.0) == b""  # the newest are kept
    assert cache.seen(DuplicateCache.key(b"h", 0), 1000.0) is None  # the oldest were evicted


def test_duplicates_are_shared_across_connections() -> None:
    """A retransmission after failover arrives on another connection and still gets the stored answer."""
    cache = DuplicateCache()
    a, b = dup_pair(cache), dup_pair(cache)
    (first,) = send_raw(a, 1, 42, 0.0)
    a.server.send_answer(eca(first.message), first.message)  # type: ignore[attr-defined]
    events = send_raw(b, 77, 42, 1.0)
    assert types(events) == ["DuplicateRequest"]
    (m,) = messages(b.server.data_to_send())
    assert m.hop_by_hop == 77


def test_unanswered_request_on_a_lost_connection_is_not_a_duplicate_elsewhere() -> None:
    """Failover: the first connection died before answering; the T-bit retry must reach the app."""
    cache = DuplicateCache()
    a, b = dup_pair(cache), dup_pair(cache)
    assert types(send_raw(a, 1, 43, 0.0)) == ["RequestReceived"]
    a.server.connection_lost(0.5)
    assert types(send_raw(b, 2, 43, 1.0)) == ["RequestReceived"]


class _ProbeAlways(DuplicateCache):
    """The cache without the highest-id shortcut: every request looked up in every segment."""

    __slots__ = ()

    def seen(self, key: bytes, now: float) -> bytes | None:
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        self._entries.put(key, b"", now)
        return None


_ORIGINS = (b"mme1.example.org", b"mme2.example.org")
_IDS = st.one_of(st.integers(0, 40), st.integers(2**32 - 20, 2**32 - 1))  # small ids and ids about to wrap
_OPS = st.lists(st.tuples(st.sampled_from(("seen", "seen", "seen", "answered", "forget")), st.sampled_from(_ORIGINS),
                          _IDS, st.sampled_from((0.0, 0.0, 0.1, 0.7, 3.0, 12.0))), max_size=300)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, window=st.sampled_from((1.0, 5.0, 30.0)), max_entries=st.sampled_from((9, 30, 200_000)))
def test_the_highest_id_shortcut_never_changes_an_answer(ops: list[tuple[str, bytes, int, float]], window: float,
                                                         max_entries: int) -> None:
    """Skipping the lookup of an id above every id recorded for its Origin-Host (duplicates.py) gives exactly
    the answers of looking every request up: upward, downward and wrapping ids, expiry, eviction, forget."""
    fast, slow = DuplicateCache(window, max_entries), _ProbeAlways(window, max_entries)
    now = 0.0
    for op, origin, e2e, dt in ops:
        now += dt
        key = DuplicateCache.key(origin, e2e)
        if op == "seen":
            assert fast.seen(key, now) == slow.seen(key, now), (origin, e2e, now)
        elif op == "answered":
            fast.answered(key, b"A%d" % e2e)
            slow.answered(key, b"A%d" % e2e)
        else:
            fast.forget(key)
            slow.forget(key)
    assert len(fast) == len(slow)


def test_ids_counting_upwards_skip_the_lookup_and_a_repeat_is_still_found() -> None:
    class Counting(SegmentedMap[bytes, bytes]):
        __slots__ = ("probes",)

        def get(self, key: bytes) -> bytes | None:
            self.probes += 1
            return super().get(key)

    cache = DuplicateCache(window=30.0)
    entries = cache._entries = Counting(9, 1000, float("-inf"))
    entries.probes = 0
    for i in range(1000):
        assert cache.seen(DuplicateCache.key(b"mme", 5000 + i), i * 0.01) is None
    assert entries.probes == 0  # every id above the highest so far: no lookup
    assert cache.seen(DuplicateCache.key(b"mme", 5500), 10.0) == b""  # a repeat: looked up and found
    assert entries.probes == 1
