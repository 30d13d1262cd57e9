"""Bulk import's fast path (plain rows as encoded values, HSETNX) must mean exactly what applying every row
one by one means: same register, same conflicts with the same line numbers, same count applied."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from eir.register.csvio import read_chunks, read_rows
from eir.register.importer import import_csv
from eir.register.memory_store import MemoryStore
from eir.register.model import Entry, Status
from eir.register.redis_store import RedisStore
from eir.register.store import OwnershipError, Store

STATUSES = ("black", "grey", "white")
REASONS = ("stolen", "lost", "", "fraud")
REPORTERS = ("ORG1", "ORG2", "", " ORG1 ")  # "" is the importer; spaces are trimmed like the slow path does


def random_file(rnd: random.Random, rows: int) -> str:
    keys = [f"3520990{rnd.randrange(10**7):07d}" for _ in range(rows // 3)]  # repeats within the file
    out = ["kind,imei,status,reason,reporter"]
    for _ in range(rows):
        k = rnd.choice(keys)
        kind = rnd.choice(("imei", "imei", "imei", ""))
        roll = rnd.random()
        if roll < 0.03:
            out.append(f"imei,{k[:10]},black,stolen,ORG1")  # bad: too short
        elif roll < 0.05:
            out.append(f"range,{k},black,stolen,ORG1")  # a range row (slow path), first == last
        elif roll < 0.07:
            out.append(f"imei, {k},BLACK,Stolen,ORG2")  # unusual spelling: slow path, same meaning
        else:
            out.append(f"{kind},{k},{rnd.choice(STATUSES)},{rnd.choice(REASONS)},{rnd.choice(REPORTERS)}")
    return "\n".join(out) + "\n"


async def one_by_one(store: Store, text: str, reporter: str, force: bool) -> tuple[int, list[int]]:
    applied, conflicts = 0, []
    for rows, _bad in read_rows(text.splitlines(keepends=True), reporter=reporter, chunk=1):
        for r in rows:
            try:
                await store.put(r.entry, force=force)
                applied += 1
            except OwnershipError:
                conflicts.append(r.line)
    return applied, conflicts


async def contents(store: Store) -> list[Entry]:
    return sorted([dataclasses.replace(e, created=0) async for c in store.export() for e in c], key=lambda e: e.ident)


async def seed(store: Store) -> None:
    """Entries that exist before the import: some owned by another organisation."""
    rnd = random.Random(99)
    for i in range(40):
        k = f"3520990{rnd.randrange(10**7):07d}"
        await store.put(Entry.imei(k, Status.BLACK, reporter=("ORG2", "OTHER")[i % 2]))


@pytest.mark.parametrize("seed_value", [1, 2, 3])
@pytest.mark.parametrize("force", [False, True])
async def test_fast_import_means_the_same_as_one_row_at_a_time(tmp_path: Path, store: Store, seed_value: int,
                                                                force: bool) -> None:
    rnd = random.Random(seed_value)
    text = random_file(rnd, 600)
    # Make some rows hit the seeded entries (listed already: merge, ownership).
    pre = random.Random(99)
    seeded = [f"3520990{pre.randrange(10**7):07d}" for _ in range(40)]
    text += "".join(f"imei,{k},white,lost,ORG1\n" for k in seeded[::3])
    path = tmp_path / "f.csv"
    path.write_text(text)
    await seed(store)
    report = await import_csv(store, path, reporter="IMPORTER", strict=False, force=force, chunk=97)

    reference = MemoryStore()
    await seed(reference)
    applied, conflicts = await one_by_one(reference, text, "IMPORTER", force)

    assert await contents(store) == await contents(reference)
    assert report.applied == applied
    assert sorted(c.line for c in report.conflicts) == conflicts
    assert [b.line for b in report.bad] == [
        n for c in read_chunks(text.splitlines(keepends=True), reporter="IMPORTER") for n in (b.line for b in c.bad)]
    if not force:
        assert conflicts, "the file was meant to hit entries owned by others"


async def test_fast_import_into_a_cluster(tmp_path: Path, cluster_store: RedisStore) -> None:
    text = random_file(random.Random(5), 400)
    path = tmp_path / "f.csv"
    path.write_text(text)
    report = await import_csv(cluster_store, path, reporter="IMPORTER", strict=False, chunk=50)
    reference = MemoryStore()
    applied, conflicts = await one_by_one(reference, text, "IMPORTER", False)
    assert await contents(cluster_store) == await contents(reference)
    assert report.applied == applied and sorted(c.line for c in report.conflicts) == conflicts


async def test_plain_rows_skip_entry_objects_but_read_rows_still_gives_them() -> None:
    text = "kind,imei,status,reason,reporter\nimei,35209900176148,black,stolen,ORG1\n,35209900176149,grey,,\n"
    (chunk,) = read_chunks(text.splitlines(keepends=True), reporter="ME", now=1_700_000_000)
    assert chunk.keys == ["35209900176148", "35209900176149"] and not chunk.rows
    assert chunk.specs[1].reporter == "ME" and chunk.specs[1].status is Status.GREY
    ((rows, bad),) = read_rows(text.splitlines(keepends=True), reporter="ME", now=1_700_000_000)
    assert not bad and [r.line for r in rows] == [2, 3]
    assert rows[0].entry == Entry.imei("35209900176148", Status.BLACK, reporter="ORG1", reason=rows[0].entry.reason,
                                       created=1_700_000_000)
