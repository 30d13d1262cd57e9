"""Decisions per second through the service with Redis, batched, for an N-entry register with R ranges.

    .venv/bin/python -m bench.register_decisions [--rows 10000000] [--ranges 10000] [--batch 1000]

Half of the requests are listed IMEIs, half are not; the cache is off for the "store" figure (every
batch is one EVALSHA round trip) and on for the "cache" figure (second pass over the same IMEIs).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from bench.register_common import generate_csv, machine, private_redis
from eir.identity import Imei
from eir.register.decision import CheckRequest
from eir.register.importer import import_csv
from eir.register.model import Entry, Status
from eir.register.redis_store import RedisStore
from eir.register.service import EquipmentChecker


async def run(url: str, path: Path, keys: list[int], ranges: int, batch: int, requests: int) -> None:
    store = RedisStore(url)
    t0 = time.perf_counter()
    report = await import_csv(store, path, reporter="bench", strict=False)
    print(f"loaded {report.applied:,} IMEIs in {time.perf_counter() - t0:.0f} s")
    rnd = random.Random(2)
    rules = []
    for _ in range(ranges):
        start = rnd.randrange(35_000_000_000_000, 35_999_000_000_000)
        rules.append(Entry.range(str(start), str(start + rnd.randrange(1, 10_000_000)), Status.GREY, reporter="b"))
    t0 = time.perf_counter()
    assert await store.put_many(rules) == []
    print(f"added {ranges:,} ranges in {time.perf_counter() - t0:.1f} s")
    sample = [str(k) for k in rnd.sample(keys, requests // 2)]
    sample += [str(rnd.randrange(35_000_000_000_000, 36_000_000_000_000)) for _ in range(requests // 2)]
    rnd.shuffle(sample)
    reqs = [CheckRequest(Imei(k), None, None, "bench") for k in sample]
    batches = [reqs[i:i + batch] for i in range(0, len(reqs), batch)]
    for label, cache in (("store (cache off)", 0), ("cache hits", len(reqs))):
        async with EquipmentChecker(store, cache_size=cache) as checker:
            if cache:
                for b in batches:
                    await checker.check_many(b)
            t0 = time.perf_counter()
            counts: dict[str, int] = {}
            for b in batches:
                for d in await checker.check_many(b):
                    counts[d.outcome.value] = counts.get(d.outcome.value, 0) + 1
            dt = time.perf_counter() - t0
            print(f"{label}: {len(reqs):,} decisions in batches of {batch} in {dt:.2f} s = "
                  f"{len(reqs) / dt:,.0f} decisions/s  {counts}")
    await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--ranges", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200_000)
    args = ap.parse_args()
    buckets = max(1 << 16, args.rows // 64)
    print(f"machine: {machine()}; rows {args.rows:,}; ranges {args.ranges:,}; buckets {buckets:,}")
    with tempfile.TemporaryDirectory(prefix="eir-bench-") as tmp:
        path = Path(tmp) / "register.csv"
        keys = generate_csv(path, args.rows)
        with private_redis(Path(tmp) / "redis") as server:
            asyncio.run(run(f"{server.url}?buckets={buckets}", path, keys, args.ranges, args.batch, args.requests))


if __name__ == "__main__":
    main()
