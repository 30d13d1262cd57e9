"""The register replica (eir.register.replica): its bookkeeping against a model of a store and its change feed
(Hypothesis), and the checker holding one over the embedded store and real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from eir.identity import parse_imei
from eir.register import open_store
from eir.register.decision import CheckRequest, Outcome
from eir.register.model import Entry, Status
from eir.register.redis_store import RedisStore
from eir.register.replica import ReplicaCache, ReplicaLoad
from eir.register.service import EquipmentChecker
from eir.register.store import CHANGE_KEYS_MAX, Store, StoreUnavailable
from tests.register.conftest import unique_prefix
from tests.register.test_service import CountingStore, eventually
from tests.support.servers import RedisServer, start_redis

K1, K2, K3 = "35209900176148", "49015420323751", "26053179311383"
KEYS = [f"{35_000_000_000_000 + i:014d}" for i in range(2)]


def req(key: str) -> CheckRequest:
    return CheckRequest(parse_imei(key), None, None, "test")


# ------------------------------------------------------------------------------------------ the bookkeeping
def test_before_a_load_it_is_the_bounded_cache() -> None:
    r = ReplicaCache(max_size=100)
    assert not r.complete and r.get(K1) is None
    r.put_many([(K1, "7"), (K2, "")], r.epoch)
    assert (r.get(K1), r.get(K2), r.get(K3)) == ("7", "", None)
    assert len(r) == 2


def test_a_completed_load_answers_every_key() -> None:
    r = ReplicaCache(max_size=100)
    r.put_many([(K3, "")], r.epoch)  # a cached "not listed"
    load = r.begin_load()
    r.add_loaded(load, [(K1, "7")])
    r.invalidate([K2])  # written while loading: its loaded value could be stale
    r.add_loaded(load, [(K2, "9"), (K3, None)])  # K3's value cannot be decoded
    assert r.finish_load(load) and r.complete and r.loads == 1
    assert r.get(K1) == "7"
    assert r.get("35000000000000") == ""  # not in the replica: not listed, no round trip
    assert r.get(K2) is None and r.get(K3) is None  # unsure: asked of the store
    assert r.unsure_count == 2 and sorted(r.take_unsure(10)) == sorted([K2, K3]) and r.take_unsure(10) == []
    r.requeue([K2, K3])  # not settled by that fetch: taken again
    assert sorted(r.take_unsure(1) + r.take_unsure(10)) == sorted([K2, K3])
    r.put_many([(K2, "9"), (K1, "8")], r.epoch)  # K2 settled; K1 was not unsure, the replica's value stays
    assert r.get(K2) == "9" and r.get(K1) == "7"
    r.unsettled(K3)
    r.requeue([K2, K3])  # K2 settled, K3 left to the checks that ask for it: neither comes back
    assert r.take_unsure(10) == [] and r.unsure_count == 1
    stale = r.epoch
    r.invalidate([K1])
    r.put_many([(K1, "5")], stale)  # fetched before that invalidation: stays unsure
    assert r.get(K1) is None
    r.put_many([(K1, "")], r.epoch)  # removed from the register
    assert r.get(K1) == "" and len(r) == 1


def test_a_key_written_after_its_chunk_arrived_is_unsure() -> None:
    r = ReplicaCache(max_size=100)
    load = r.begin_load()
    r.add_loaded(load, [(K1, "7"), (K2, "8")])
    r.invalidate([K1])
    assert r.finish_load(load)
    assert r.get(K1) is None and r.get(K2) == "8"


def test_anything_may_have_changed_drops_the_replica_and_the_load_in_progress() -> None:
    r = ReplicaCache(max_size=100)
    load = r.begin_load()
    r.add_loaded(load, [(K1, "7")])
    assert r.finish_load(load)
    assert r.get(K2) == ""
    load = r.begin_load()
    r.invalidate(None)
    assert not r.complete and r.get(K2) is None and r.get(K1) is None
    r.add_loaded(load, [(K1, "7")])
    assert not r.finish_load(load)
    first, second = r.begin_load(), r.begin_load()  # a newer load abandons the older
    assert not r.finish_load(first) and r.finish_load(second)


def test_a_register_too_big_stays_a_cache() -> None:
    r = ReplicaCache(max_size=100, max_entries=2)
    load = r.begin_load()
    r.add_loaded(load, [(K1, "1"), (K2, "2"), (K3, "3")])
    assert load.too_big and not r.finish_load(load) and not r.complete
    assert r.get(K1) is None  # a miss: the store is asked


class ReplicaAgainstStore(RuleBasedStateMachine):
    """A store of two keys, written at any time; the feed delivers each write's invalidation later; a load
    scans the keys one by one while writes go on (a chunk read before a write may arrive after it); fetches of
    misses are in flight across writes. Whatever the replica answers for a key whose writes the feed has all
    delivered is the store's current value."""

    @initialize()
    def setup(self) -> None:
        self.store: dict[str, str] = {}
        self.replica = ReplicaCache(max_size=4)
        self.feed: deque[tuple[str, ...] | None] = deque()
        self.load: ReplicaLoad | None = None
        self.scanned = 0
        self.chunks: list[tuple[str, str]] = []
        self.fetches: list[tuple[int, list[tuple[str, str]]]] = []
        self.replica.invalidate(None)  # the feed's first resync, and a load of the empty store
        assert self.replica.finish_load(self.replica.begin_load())

    @rule(k=st.sampled_from(KEYS), v=st.sampled_from(["", "1", "2"]))
    def write(self, k: str, v: str) -> None:
        if v:
            self.store[k] = v
        else:
            self.store.pop(k, None)
        self.feed.append((k,))

    @precondition(lambda self: self.load is None)  # (an abandoned load: test_anything_may_have_changed_...)
    @rule()
    def write_everything(self) -> None:  # an import of more keys than a change entry names: "*"
        self.store[KEYS[0]] = "2"
        self.feed.append(None)

    @precondition(lambda self: bool(self.feed))
    @rule()
    def deliver(self) -> None:
        self.replica.invalidate(self.feed.popleft())

    @precondition(lambda self: self.load is None or self.load.aborted)  # the checker loads one at a time
    @rule()
    def begin_load(self) -> None:
        self.load, self.scanned, self.chunks = self.replica.begin_load(), 0, []

    @precondition(lambda self: self.load is not None and self.scanned < len(KEYS))
    @rule()
    def scan_reads(self) -> None:  # the store answers the next chunk (one key) ...
        k = KEYS[self.scanned]
        self.scanned += 1
        if k in self.store:
            self.chunks.append((k, self.store[k]))

    @precondition(lambda self: self.load is not None and (self.chunks or self.scanned == len(KEYS)))
    @rule()
    def scan_arrives(self) -> None:  # ... and the checker adds it later: the feed may deliver in between
        assert self.load is not None
        self.replica.add_loaded(self.load, self.chunks)
        self.chunks = []
        if self.scanned == len(KEYS):  # the checker finishes a load with its last chunk
            self.replica.finish_load(self.load)
            self.load = None

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    def fetch_begins(self, keys: list[str]) -> None:
        self.fetches.append((self.replica.epoch, [(k, self.store.get(k, "")) for k in keys]))

    @precondition(lambda self: bool(self.fetches))
    @rule(i=st.integers(min_value=0, max_value=10))
    def fetch_ends(self, i: int) -> None:
        epoch, values = self.fetches.pop(i % len(self.fetches))
        self.replica.put_many(values, epoch)

    @invariant()
    def answers_are_current_once_the_feed_caught_up(self) -> None:
        if None in self.feed:
            return
        pending = {k for keys in self.feed if keys is not None for k in keys}
        for k in KEYS:
            got = self.replica.get(k)
            if k not in pending:
                assert got is None or got == self.store.get(k, ""), (k, got, self.store.get(k))


TestReplicaAgainstStore = ReplicaAgainstStore.TestCase
TestReplicaAgainstStore.settings = settings(max_examples=500, stateful_step_count=30, deadline=None)


# ------------------------------------------------------------------------------------------ the checker
async def until_complete(checker: EquipmentChecker) -> None:
    await eventually(lambda: checker.replica is not None and checker.replica.complete, timeout=10)


async def test_replica_answers_listed_and_unlisted_without_the_store(store: Store) -> None:
    await store.put_many([Entry.imei(K1, Status.BLACK), Entry.imei(K2, Status.GREY, imsi="208011234567890"),
                          Entry.range("26053179000000", "26053179999999", Status.GREY)])
    async with EquipmentChecker(store) as plain:
        want = [d.verdict for d in await plain.check_many([req(k) for k in (K1, K2, K3, KEYS[0])])]
    counter = CountingStore(store)
    async with EquipmentChecker(store, replica_max_entries=100) as checker:
        await until_complete(checker)
        reads = counter.calls
        got = [checker.verdict_cached(k) for k in (K1, K2, K3, KEYS[0])]
        assert got == want and counter.calls == reads  # every answer from memory, none from the store
        assert [v.outcome for v in got] == [Outcome.BLACK, Outcome.UNKNOWN, Outcome.GREY, Outcome.UNKNOWN]  # type: ignore[union-attr]
        assert len(checker.cache) == 2


async def test_replica_follows_another_writer(redis_store: RedisStore) -> None:
    await redis_store.put(Entry.imei(K1, Status.BLACK))
    writer = open_store(redis_store.url)
    try:
        async with EquipmentChecker(redis_store, replica_max_entries=10_000) as checker:
            await until_complete(checker)
            assert checker.verdict_cached(K2).outcome is Outcome.UNKNOWN  # type: ignore[union-attr]
            await writer.put(Entry.imei(K2, Status.GREY))
            await writer.remove(f"imei:{K1}", reporter="", force=True)
            # the feed marks both unsure, the background refresh settles them: answered from memory again
            await eventually(lambda: (v := checker.verdict_cached(K2)) is not None and v.outcome is Outcome.GREY)
            await eventually(lambda: (v := checker.verdict_cached(K1)) is not None and v.outcome is Outcome.UNKNOWN)
            assert checker.replica is not None and checker.replica.complete and checker.replica.unsure_count == 0
            # an import chunk (its IMEIs named by one change entry): no new load, the IMEIs it wrote are unsure
            # until the background refresh has fetched them
            loads = checker.replica.loads
            await writer.put_many([Entry.imei(f"{36_000_000_000_000 + i:014d}", Status.BLACK) for i in range(1500)])
            await eventually(lambda: checker.replica is not None and checker.replica.unsure_count > 0)
            await eventually(lambda: checker.replica is not None and checker.replica.unsure_count == 0)
            assert checker.replica.complete and checker.replica.loads == loads and len(checker.replica) == 1501
            assert checker.verdict_cached("36000000000777").outcome is Outcome.BLACK  # type: ignore[union-attr]
            # a write of more IMEIs than a change entry names ("*"): the replica loads again
            await writer.put_many([Entry.imei(f"{37_000_000_000_000 + i:014d}", Status.GREY)
                                   for i in range(CHANGE_KEYS_MAX + 1)])
            await eventually(lambda: checker.replica is not None and checker.replica.loads > loads, timeout=10)
            await until_complete(checker)
            assert len(checker.replica) == 1501 + CHANGE_KEYS_MAX + 1
            assert checker.verdict_cached("37000000000777").outcome is Outcome.GREY  # type: ignore[union-attr]
    finally:
        await writer.close()


async def test_an_import_that_outgrows_the_replica_drops_it(redis_store: RedisStore,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Held plus unsure IMEIs beyond ``replica_max_entries``: the register may no longer fit, so the replica is
    dropped and loaded again, which finds it too big (the bounded cache then answers, exactly)."""
    await redis_store.put_many([Entry.imei(f"{35_000_000_000_000 + i:014d}", Status.BLACK) for i in range(50)])
    async with EquipmentChecker(redis_store, replica_max_entries=100) as checker:
        await until_complete(checker)
        assert checker.replica is not None and checker.replica.loads == 1
        new = [Entry.imei(f"{36_000_000_000_000 + i:014d}", Status.GREY) for i in range(60)]
        await redis_store.put_many(new[:40])  # 50 held + 40 unsure: still room
        await eventually(lambda: checker.replica is not None and checker.replica.unsure_count == 0)
        assert checker.replica.complete and checker.replica.loads == 1
        await redis_store.put_many(new[40:])  # 90 held + 20 unsure > 100
        await eventually(lambda: checker.replica is not None and not checker.replica.complete)
        checks = [(e.key, None, None, None) for e in new[::7]]
        assert [v.outcome for v in await checker.verdicts(checks)] == [Outcome.GREY] * len(checks)
        # the load it started finds the register too big (110 > 100): the bounded cache goes on answering
        await eventually(lambda: "more than 100 IMEI-level entries" in caplog.text)
        assert not checker.replica.complete and checker.replica.loads == 1


async def test_a_load_interrupted_by_the_store_is_tried_again() -> None:
    """The store fails during a load while the feed stays up (or resumes, as after a short Redis hiccup):
    no resync will come, so the checker itself loads again."""
    store = open_store("memory://")
    await store.put_many([Entry.imei(K1, Status.BLACK), Entry.imei(K2, Status.GREY)])
    scan = store.scan_values
    failures = [StoreUnavailable("connection lost mid-load")]

    async def flaky() -> AsyncIterator[list[tuple[str, str | None]]]:
        async for chunk in scan():
            if failures:
                raise failures.pop()
            yield chunk

    store.scan_values = flaky  # type: ignore[method-assign]
    async with EquipmentChecker(store, replica_max_entries=100) as checker:
        await until_complete(checker)
        assert not failures and checker.replica is not None and checker.replica.loads == 1
        assert checker.verdict_cached(K2).outcome is Outcome.GREY  # type: ignore[union-attr]


async def test_replica_too_big_works_as_the_cache(redis_store: RedisStore, caplog: pytest.LogCaptureFixture) -> None:
    await redis_store.put_many([Entry.imei(k, Status.BLACK) for k in (K1, K2, K3)])
    async with EquipmentChecker(redis_store, replica_max_entries=2) as checker:
        await eventually(lambda: "more than 2 IMEI-level entries" in caplog.text)
        assert checker.replica is not None and not checker.replica.complete
        assert checker.verdict_cached(K1) is None  # a miss, then the store
        assert [v.outcome for v in await checker.verdicts([(K1, None, None, None)])] == [Outcome.BLACK]
        assert checker.verdict_cached(K1).outcome is Outcome.BLACK  # type: ignore[union-attr]


async def test_replica_unused_while_redis_is_down_and_loaded_again_after_a_restart(tmp_path: Any) -> None:
    with start_redis(tmp_path / "outage") as server:
        await _outage(server)


async def _outage(server: RedisServer) -> None:
    store = open_store(f"{server.url}?prefix=r{unique_prefix()}&buckets=1024&timeout=1")
    await store.put(Entry.imei(K1, Status.BLACK))
    async with EquipmentChecker(store, replica_max_entries=100) as checker:
        await until_complete(checker)
        replica = checker.replica
        assert replica is not None and replica.loads == 1
        server.stop()
        await eventually(lambda: not checker.synced)
        assert checker.verdict_cached(K1) is None and checker.verdict_cached(K2) is None  # not trusted
        assert [v.outcome for v in await checker.verdicts([(K1, None, None, None)])] == [Outcome.STORE_UNAVAILABLE]
        server.restart()  # a new run, empty: the feed cannot resume, it resyncs and the replica loads again
        await eventually(lambda: replica.loads == 2, timeout=10)
        assert checker.verdict_cached(K1).outcome is Outcome.UNKNOWN  # type: ignore[union-attr]
    await store.close()


async def test_feed_interrupted_then_resumed_keeps_the_replica(redis_server: RedisServer) -> None:
    """The feed's connection is cut (as when an EIR too busy to read it times out): the replica is not used
    until the feed is back, then it is, without a new load, with every change made meanwhile."""
    store = open_store(f"{redis_server.url}?prefix=r{unique_prefix()}&buckets=1024")
    writer = open_store(store.url)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        await store.put_many([Entry.imei(K1, Status.BLACK), Entry.imei(K2, Status.BLACK)])
        async with EquipmentChecker(store, replica_max_entries=100) as checker:
            await until_complete(checker)
            replica = checker.replica
            assert replica is not None
            for _ in range(3):
                while not admin.client_kill_filter(_type="normal", skipme=True):  # every client but this one
                    await asyncio.sleep(0.01)
                with contextlib.suppress(StoreUnavailable):  # the writer's connections were cut too
                    await writer.put(Entry.imei(K1, Status.BLACK), force=True)
                await writer.put(Entry.imei(K2, Status.GREY), force=True)  # while the feed may be cut
                await writer.put(Entry.imei(K3, Status.BLACK), force=True)
                await eventually(lambda: checker.synced and (v := checker.verdict_cached(K3)) is not None
                                 and v.outcome is Outcome.BLACK)
                assert checker.verdict_cached(K2).outcome is Outcome.GREY  # type: ignore[union-attr]
                await writer.remove(f"imei:{K3}", reporter="", force=True)
                await writer.put(Entry.imei(K2, Status.BLACK), force=True)
                await eventually(lambda: (v := checker.verdict_cached(K3)) is not None and v.outcome is Outcome.UNKNOWN)
            assert replica.loads == 1 and replica.complete
            assert checker.verdict_cached(K1).outcome is Outcome.BLACK  # type: ignore[union-attr]
    finally:
        admin.close()
        await writer.close()
        await store.close()
