"""The decision service: batching (one round trip), cache, invalidation across instances and processes,
store outage and recovery."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from eir.identity import parse_imei
from eir.register import open_store
from eir.register.decision import CheckRequest, Outcome
from eir.register.memory_store import MemoryStore
from eir.register.model import Entry, Granularity, Status
from eir.register.policy import Policy
from eir.register.redis_store import RedisStore
from eir.register.service import EquipmentChecker
from eir.register.store import Store, StoreUnavailable
from tests.register.conftest import unique_prefix
from tests.support.servers import RedisServer, start_redis

K1, K2, K3 = "35209900176148", "49015420323751", "26053179311383"
ROOT = Path(__file__).resolve().parents[2]


def req(key: str, imsi: str | None = None, svn: str | None = None) -> CheckRequest:
    return CheckRequest(parse_imei(key), imsi, svn, "test")


async def eventually(cond: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll until cond() is true; the timeout only bounds a failing test, nothing asserts on time."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


class CountingStore:
    """Counts the store reads the checker makes (wraps the primitive every lookup goes through)."""

    def __init__(self, store: Store) -> None:
        self.calls = 0
        orig = store._read_values

        async def counted(keys):  # type: ignore[no-untyped-def]
            self.calls += 1
            return await orig(keys)

        store._read_values = counted  # type: ignore[method-assign]


async def test_batch_is_one_round_trip_and_hits_need_none(store: Store) -> None:
    await store.put(Entry.imei(K1, Status.BLACK))
    await store.put(Entry.range("49015420000000", "49015420999999", Status.GREY))
    counter = CountingStore(store)
    async with EquipmentChecker(store) as checker:
        batch = [req(K1), req(K2), req(K3), req(K1, "208011234567890")] * 50
        if isinstance(store, RedisStore):
            r = redis.Redis(unix_socket_path=store.url.split("unix://")[-1].split("?")[0]) if "unix" in store.url \
                else redis.Redis.from_url(store.url.split("?")[0])
            r.config_resetstat()
        decisions = await checker.check_many(batch)
        assert counter.calls == 1
        if isinstance(store, RedisStore):
            stats = r.info("commandstats")
            assert stats["cmdstat_evalsha"]["calls"] == 1  # the whole batch: one command, one round trip
            r.close()
        assert [d.outcome for d in decisions[:4]] == [Outcome.BLACK, Outcome.GREY, Outcome.UNKNOWN, Outcome.BLACK]
        assert decisions[1].matched is Granularity.RANGE
        # all hits now: answered without touching the store
        again = await checker.check_many(batch)
        assert counter.calls == 1 and again == decisions
        assert checker.check_cached(req(K3)) == decisions[2]
        # cached=False (the S13 front end's misses, already probed): straight to the store, same answers
        assert await checker.check_many(batch, cached=False) == decisions and counter.calls == 2


@pytest.mark.parametrize("audit", [False, True], ids=["plain", "audit"])
@pytest.mark.parametrize("unknown", [None, Status.WHITE], ids=["unknown", "default-white"])
async def test_verdicts_agree_with_full_decisions(store: Store, audit: bool, unknown: Status | None) -> None:
    """The front ends' hot path (verdict_cached / verdicts: no entry or decision objects for a plain IMEI entry)
    gives exactly the outcome and status of check_cached / check_many, at every precedence level."""
    now = int(time.time())
    await store.put_many([
        Entry.imei(K1, Status.BLACK),  # plain: the compact integer form
        Entry.imei(K2, Status.WHITE, imsi="208011234567890"),  # pairing only
        Entry.imei("49015420323752", Status.BLACK), Entry.imei("49015420323752", Status.GREY, imsi="208011234567890"),
        Entry.imei("49015420323753", Status.GREY, expires=now + 3600),  # text form
        Entry.imei("49015420323754", Status.BLACK, expires=now - 10),  # expired: the range decides
        Entry.range("49015420323700", "49015420323799", Status.GREY),
        Entry.tac("86000000", Status.BLACK, svns=frozenset({"07"})),
        Entry.tac("86000001", Status.GREY),
    ])
    checks = [(k, imsi, svn, "test") for k in (K1, K2, K3, "49015420323752", "49015420323753", "49015420323754",
                                               "49015420323755", "86000000123456", "86000001123456")
              for imsi in (None, "208011234567890", "208019999999999") for svn in (None, "07", "08")]
    requests = [CheckRequest(parse_imei(k), imsi, svn, who) for k, imsi, svn, who in checks]
    async with EquipmentChecker(store, Policy(unknown), audit=audit) as checker:
        assert all(checker.verdict_cached(*c) is None for c in checks)  # nothing cached yet
        verdicts = await checker.verdicts(checks)
        async with EquipmentChecker(store, Policy(unknown)) as other:
            full = [d.verdict for d in await other.check_many(requests)]
        assert verdicts == full
        assert {v.outcome for v in verdicts} >= {Outcome.BLACK, Outcome.GREY, Outcome.WHITE,
                                                 Outcome.BLACK_ALLOWED_BY_PAIRING}
        assert [checker.verdict_cached(*c) for c in checks] == full  # now all hits, same verdicts
        if audit:
            await checker.flush_audit()
            assert len([r async for r in store.audit_export()]) == 2 * len(checks)


@pytest.mark.parametrize("unknown", [None, Status.WHITE], ids=["unknown", "default-white"])
async def test_unlisted_imeis_without_rules_and_after_a_rule_arrives(store: Store, unknown: Status | None) -> None:
    """An IMEI on no list, while there is no rule, is answered the policy's unknown verdict without a decision
    (the quick path of most checks); once another writer adds a rule that covers it, the rule decides."""
    writer = open_store(store.url) if isinstance(store, RedisStore) else store
    checks = [(K3, None, "07", "test"), (K3, "208011234567890", None, "test"), (K2, None, None, "test")]
    try:
        await store.put(Entry.imei(K1, Status.BLACK))
        async with EquipmentChecker(store, Policy(unknown)) as checker:
            expected = Policy(unknown).unknown_decision.verdict
            assert await checker.verdicts(checks) == [expected] * 3
            assert [checker.verdict_cached(*c) for c in checks] == [expected] * 3
            await writer.put(Entry.tac(K3[:8], Status.BLACK, svns=frozenset({"07"})))
            await eventually(lambda: checker._rules is not None and checker._rules.size == 1)
            got = [checker.verdict_cached(*c) for c in checks]
            assert [v.outcome if v else None for v in got] == [Outcome.BLACK, expected.outcome, expected.outcome]
            async with EquipmentChecker(store, Policy(unknown)) as other:
                full = [d.verdict for d in await other.check_many([req(k, i, v) for k, i, v, _ in checks])]
            assert got == full and await checker.verdicts(checks) == full
    finally:
        if writer is not store:
            await writer.close()


async def test_check_cached_miss_returns_none(store: Store) -> None:
    async with EquipmentChecker(store) as checker:
        assert checker.check_cached(req(K1)) is None
        await checker.check(req(K1))
        d = checker.check_cached(req(K1))
        assert d is not None and d.outcome is Outcome.UNKNOWN


async def test_default_status_policy(store: Store) -> None:
    async with EquipmentChecker(store, Policy(Status.WHITE)) as checker:
        d = await checker.check(req(K1))
        assert (d.outcome, d.status, d.matched) == (Outcome.WHITE, Status.WHITE, Granularity.DEFAULT)


async def test_svn_from_imeisv(store: Store) -> None:
    await store.put(Entry.tac("35209900", Status.GREY, svns=frozenset({"12"})))
    async with EquipmentChecker(store) as checker:
        d = await checker.check(CheckRequest(parse_imei("3520990017614812")))
        assert d.matched is Granularity.TAC_SVN


async def test_changes_by_another_writer_reach_the_cache(store: Store) -> None:
    """A second client of the same store (another instance) changes entries; the first sees them."""
    writer = open_store(store.url) if isinstance(store, RedisStore) else store
    try:
        async with EquipmentChecker(store) as checker:
            assert (await checker.check(req(K1))).outcome is Outcome.UNKNOWN  # now cached
            assert checker.check_cached(req(K1)) is not None
            await writer.put(Entry.imei(K1, Status.BLACK))
            await eventually(lambda: checker.check_cached(req(K1)) is None)
            assert (await checker.check(req(K1))).outcome is Outcome.BLACK
            await writer.put(Entry.tac("49015420", Status.GREY))  # a rule: reloaded in process
            await eventually(lambda: (c := checker.check_cached(req(K1))) is not None and c.outcome is Outcome.BLACK
                             and checker._rules is not None and "49015420" in checker._rules.tacs)
            assert (await checker.check(req(K2))).matched is Granularity.TAC
    finally:
        if writer is not store:
            await writer.close()


def _eir(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = ROOT / ".venv" / "bin" / "eir"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "eir.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, **(env or {})})


async def test_change_from_another_process_redis(redis_store: RedisStore) -> None:
    async with EquipmentChecker(redis_store) as checker:
        assert (await checker.check(req(K2))).outcome is Outcome.UNKNOWN
        proc = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / "eir"), "list", "add", K2, "--status", "black", "--store", redis_store.url,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        await eventually(lambda: checker.check_cached(req(K2)) is None)
        assert (await checker.check(req(K2))).outcome is Outcome.BLACK


async def test_change_from_another_process_memory_file(tmp_path: Path) -> None:
    path = tmp_path / "reg.eir"
    store = MemoryStore(path)
    async with EquipmentChecker(store) as checker:
        assert (await checker.check(req(K2))).outcome is Outcome.UNKNOWN
        proc = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / "eir"), "list", "add", K2, "--status", "grey", "--store", f"memory://{path}",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        await eventually(lambda: checker.check_cached(req(K2)) is None)
        assert (await checker.check(req(K2))).outcome is Outcome.GREY


async def test_audit_trail(store: Store) -> None:
    await store.put(Entry.imei(K1, Status.BLACK, reporter="orgA"))
    async with EquipmentChecker(store, audit=True) as checker:
        await checker.check_many([req(K1, "208011234567890", "03"), req(K2)])
        checker.check_cached(req(K1))
        await checker.flush_audit()
    records = [r async for r in store.audit_export()]
    assert [(r.imei, r.outcome, r.matched) for r in records] == [
        (K1, "black", "imei"), (K2, "unknown", ""), (K1, "black", "imei")]
    assert records[0].imsi == "208011234567890" and records[0].svn == "03" and records[0].reporter == "orgA"
    assert records[0].requester == "test" and float(records[0].time) > 0


async def test_redis_outage_then_recovery(tmp_path: Path) -> None:
    with start_redis(tmp_path / "outage") as server:
        await _outage(server)


async def _outage(server: RedisServer) -> None:
    url = f"{server.url}?prefix=o{unique_prefix()}&buckets=1024&timeout=1"
    store = open_store(url)
    await store.put(Entry.imei(K1, Status.BLACK))
    async with EquipmentChecker(store) as checker:
        assert (await checker.check(req(K1))).outcome is Outcome.BLACK
        server.stop()
        # the feed notices, the cache is dropped: every decision is STORE_UNAVAILABLE, not an exception
        await eventually(lambda: not checker.synced)
        d = await checker.check(req(K1))
        assert d.outcome is Outcome.STORE_UNAVAILABLE and d.status is None
        assert [x.outcome for x in await checker.check_many([req(K2), req(K3)])] == [Outcome.STORE_UNAVAILABLE] * 2
        # writes during the outage are refused, never acknowledged
        with pytest.raises(StoreUnavailable):
            await store.put(Entry.imei(K2, Status.BLACK))
        server.restart()  # persistence is off: the register comes back empty
        await eventually(lambda: checker.synced, timeout=10)
        assert (await checker.check(req(K1))).outcome is Outcome.UNKNOWN
        await store.put(Entry.imei(K2, Status.BLACK))
        assert (await checker.check(req(K2))).outcome is Outcome.BLACK
    await store.close()


@pytest.mark.redis
async def test_service_on_cluster(cluster_store: RedisStore) -> None:
    """Batch lookups across nodes, and invalidation through the change stream, on a real cluster."""
    await cluster_store.put(Entry.imei(K1, Status.BLACK))
    await cluster_store.put(Entry.range("49015420000000", "49015420999999", Status.GREY))
    writer = RedisStore(cluster_store.url)
    try:
        async with EquipmentChecker(cluster_store) as checker:
            got = await checker.check_many([req(K1), req(K2), req(K3)])
            assert [d.outcome for d in got] == [Outcome.BLACK, Outcome.GREY, Outcome.UNKNOWN]
            await writer.put(Entry.imei(K3, Status.WHITE))
            await eventually(lambda: checker.check_cached(req(K3)) is None)
            assert (await checker.check(req(K3))).outcome is Outcome.WHITE
    finally:
        await writer.close()
