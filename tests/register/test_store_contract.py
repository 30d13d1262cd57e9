"""One contract, run against the embedded store, real Redis (TCP and unix socket) and a real cluster."""

from __future__ import annotations

import pytest

from eir.register.model import Entry, Granularity, Reason, Status
from eir.register.redis_store import RedisStore
from eir.register.store import Change, EntryNotFound, OwnershipError, Store

K1, K2 = "35209900176148", "49015420323751"
IMSI = "208011234567890"


async def core_contract(store: Store) -> None:
    """The core behaviour every store must have (also run on the cluster)."""
    e1 = Entry.imei(K1, Status.BLACK, reason=Reason.STOLEN, reporter="orgA", created=1_700_000_000)
    assert await store.put(e1) is None
    pair = Entry.imei(K1, Status.WHITE, imsi=IMSI, reporter="orgA", created=1_700_000_001, expires=1_900_000_000)
    await store.put(pair)
    rng = Entry.range("35209900000000", "35209900099999", Status.GREY, reporter="orgB", created=1_700_000_002)
    tac = Entry.tac("49015420", Status.BLACK, reason=Reason.COUNTERFEIT, reporter="orgC", created=1_700_000_003)
    svn = Entry.tac("49015420", Status.GREY, svns=frozenset({"01"}), reporter="orgC", created=1_700_000_004)
    for r in (rng, tac, svn):
        await store.put(r)
    # one call, several keys, exact round trip of every field
    got = await store.lookup([K1, K2, K1])
    assert sorted(got[0], key=lambda e: e.ident) == sorted([e1, pair], key=lambda e: e.ident)
    assert got[1] == () and got[2] == got[0]
    assert sorted(await store.rules(), key=lambda e: e.ident) == sorted([rng, tac, svn], key=lambda e: e.ident)
    # replace by identity
    e1b = e1.with_(status=Status.GREY, reason=Reason.FAULTY)
    assert await store.put(e1b) == e1
    assert e1b in (await store.lookup([K1]))[0]
    # GSMA rule: another organisation cannot change or remove it unless forced
    with pytest.raises(OwnershipError):
        await store.put(e1.with_(reporter="orgZ"))
    with pytest.raises(OwnershipError):
        await store.remove(e1.ident, reporter="orgZ")
    with pytest.raises(OwnershipError):
        await store.remove(rng.ident, reporter="orgZ")
    assert await store.remove(rng.ident, reporter="orgB") == rng
    assert await store.remove(e1.ident, reporter="orgZ", force=True) == e1b
    assert (await store.lookup([K1]))[0] == (pair,)
    with pytest.raises(EntryNotFound):
        await store.remove(e1.ident, reporter="orgA")
    assert await store.remove(pair.ident, reporter="orgA") == pair
    assert (await store.lookup([K1]))[0] == ()


async def test_core_contract(store: Store) -> None:
    await core_contract(store)


@pytest.mark.redis
async def test_core_contract_on_cluster(cluster_store: RedisStore) -> None:
    await core_contract(cluster_store)
    # batch lookups spread over many slots and nodes
    keys = [f"3520990{i:07d}" for i in range(0, 5000, 7)]
    conflicts = await cluster_store.put_many([Entry.imei(k, Status.BLACK, reporter="bulk") for k in keys])
    assert conflicts == []
    got = await cluster_store.lookup(keys)
    assert all(len(g) == 1 and g[0].status is Status.BLACK for g in got)


async def test_put_many_reports_conflicts_and_applies_the_rest(store: Store) -> None:
    await store.put(Entry.imei(K1, Status.BLACK, reporter="orgA"))
    batch = [Entry.imei(K1, Status.WHITE, reporter="orgB"), Entry.imei(K2, Status.GREY, reporter="orgB"),
             Entry.tac("35209900", Status.GREY, reporter="orgB")]
    conflicts = await store.put_many(batch)
    assert [c.index for c in conflicts] == [0] and "orgA" in conflicts[0].reason
    assert (await store.lookup([K2]))[0][0].status is Status.GREY
    assert (await store.lookup([K1]))[0][0].reporter == "orgA"
    assert await store.put_many(batch, force=True) == []
    assert (await store.lookup([K1]))[0][0].reporter == "orgB"


async def test_idempotent_put_many(store: Store) -> None:
    batch = [Entry.imei(f"3520990000{i:04d}", Status.BLACK, reporter="o", created=1_700_000_000) for i in range(300)]
    batch.append(Entry.range("35209901000000", "35209901000099", Status.GREY, reporter="o", created=1_700_000_000))
    assert await store.put_many(batch) == []
    first = [e async for chunk in store.export() for e in chunk]
    assert await store.put_many(batch) == []
    again = [e async for chunk in store.export() for e in chunk]
    assert sorted(first, key=lambda e: e.ident) == sorted(again, key=lambda e: e.ident) and len(first) == 301


async def test_entries_for_and_export(store: Store) -> None:
    await store.put(Entry.imei(K1, Status.BLACK, reporter="a"))
    await store.put(Entry.range("35209900000000", "35209900999999", Status.GREY, reporter="b"))
    await store.put(Entry.tac("35209900", Status.WHITE, reporter="c"))
    await store.put(Entry.tac("11111111", Status.WHITE, reporter="c"))
    got = {e.granularity for e in await store.entries_for(K1)}
    assert got == {Granularity.IMEI, Granularity.RANGE, Granularity.TAC}
    exported = [e async for chunk in store.export() for e in chunk]
    assert len(exported) == 4


async def test_reporter_interned_by_another_client_is_decoded(store: Store) -> None:
    if not isinstance(store, RedisStore):
        pytest.skip("needs two clients on one store")
    other = RedisStore(store.url)
    try:
        await other.put(Entry.imei(K2, Status.BLACK, reporter="newcomer-org"))
    finally:
        await other.close()
    await store.lookup([K1])  # loads the reporter table before the newcomer existed? make sure it reloads
    assert (await store.lookup([K2]))[0][0].reporter == "newcomer-org"


async def test_change_feed_reports_keys_and_rules(store: Store) -> None:
    feed = store.watch()

    async def next_change() -> Change:
        while (c := await anext(feed)).heartbeat:
            pass
        return c

    first = await next_change()
    assert first.keys is None  # a resync first
    await store.put(Entry.imei(K1, Status.BLACK))
    assert (await next_change()).keys == frozenset({K1})
    await store.put(Entry.tac("35209900", Status.BLACK))
    assert (await next_change()).rules
    await feed.aclose()
