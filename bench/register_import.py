"""Import rate of an N-row CSV into Redis and into the embedded store, and Redis bytes per listed IMEI.

    .venv/bin/python -m bench.register_import [--rows 10000000] [--skip-memory]

Prints rows/s for the single-pass import (``--skip-bad`` mode) into Redis and into the embedded store,
the Redis ``used_memory`` growth divided by the number of IMEIs, and rows/s of the default strict
import (validate the whole file, then apply it) into the same Redis, emptied again.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import redis

from bench.register_common import generate_csv, machine, private_redis
from eir.register.importer import import_csv
from eir.register.memory_store import MemoryStore
from eir.register.redis_store import RedisStore


async def _import(store: RedisStore | MemoryStore, path: Path, strict: bool = False) -> tuple[float, int]:
    t0 = time.perf_counter()
    report = await import_csv(store, path, reporter="bench", strict=strict)
    dt = time.perf_counter() - t0
    assert report.ok, (report.bad[:3], report.conflicts[:3])
    await store.close()  # so no client query buffer is counted in used_memory
    return dt, report.applied


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--buckets", type=int, default=0, help="Redis buckets (default rows/64, at least 2^16)")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    buckets = args.buckets or max(1 << 16, args.rows // 64)
    print(f"machine: {machine()}; rows {args.rows:,}; buckets {buckets:,}")
    with tempfile.TemporaryDirectory(prefix="eir-bench-") as tmp:
        path = Path(tmp) / "register.csv"
        t0 = time.perf_counter()
        generate_csv(path, args.rows)
        print(f"generated {path.stat().st_size / 1e6:.0f} MB CSV in {time.perf_counter() - t0:.1f} s")
        with private_redis(Path(tmp) / "redis") as server:
            r = redis.Redis.from_url(server.url)
            before = int(r.info("memory")["used_memory"])
            store = RedisStore(f"{server.url}?buckets={buckets}")
            dt, n = asyncio.run(_import(store, path))
            after = int(r.info("memory")["used_memory"])
            enc = r.object("encoding", f"eir:i{buckets // 2}")
            avg = r.hlen(f"eir:i{buckets // 2}")
            print(f"redis import: {n:,} rows in {dt:.1f} s = {n / dt:,.0f} rows/s")
            print(f"redis memory: {after - before:,} bytes for {n:,} IMEIs = {(after - before) / n:.1f} bytes/IMEI "
                  f"(bucket encoding {enc!r}, a sample bucket holds {avg} IMEIs)")
            r.flushall()  # the strict import starts from an empty Redis too
            dt, n = asyncio.run(_import(RedisStore(f"{server.url}?buckets={buckets}"), path, strict=True))
            print(f"redis import, strict (the CLI's default: validate all, then apply): {n:,} rows in {dt:.1f} s = "
                  f"{n / dt:,.0f} rows/s")
            r.close()
        if not args.skip_memory:
            mem = MemoryStore()
            dt, n = asyncio.run(_import(mem, path))
            print(f"embedded import: {n:,} rows in {dt:.1f} s = {n / dt:,.0f} rows/s")


if __name__ == "__main__":
    main()
