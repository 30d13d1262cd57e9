"""How long an EIR takes to load its replica of the register, and what it holds in memory (issue 5).

    .venv/bin/python -m bench.replica_load [--entries 1000000] [--unix]

Starts a private redis-server, imports ``--entries`` black-listed IMEIs with ``eir list import``, then starts
an :class:`~eir.register.service.EquipmentChecker` with a replica (``replica_max_entries``) on it, as ``eir
serve --replica-max-entries`` does, and waits until the replica holds the whole register. Prints the wall
time, this process's CPU time (user + system; redis-server's is not included) and the growth of its
resident memory (``VmRSS``) while it holds the replica.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import uvloop

from bench.register_common import import_register, machine, private_redis
from eir.register import open_store
from eir.register.service import EquipmentChecker


def rss_kib() -> int:
    """This process's resident memory now (KiB)."""
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def load(url: str, entries: int) -> tuple[float, float, int, int]:
    """(wall s, CPU s, replica size, resident memory growth in KiB) of one load."""
    store = open_store(url)
    try:
        checker = EquipmentChecker(store, replica_max_entries=2 * entries)
        rss, wall, cpu = rss_kib(), time.perf_counter(), time.process_time()
        async with checker:
            replica = checker.replica
            assert replica is not None
            while not replica.complete:
                await asyncio.sleep(0.05)
            return time.perf_counter() - wall, time.process_time() - cpu, len(replica), rss_kib() - rss
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--unix", action="store_true", help="Redis over its unix socket instead of loopback TCP")
    args = ap.parse_args()
    print(f"# {machine()}; {args.entries:,} listed IMEIs")
    with tempfile.TemporaryDirectory(prefix="eir-bench-") as tmp, private_redis(Path(tmp) / "redis") as rs:
        import_register(Path(tmp), rs.url, args.entries)
        wall, cpu, size, grown = uvloop.run(load(rs.unix_url if args.unix else rs.url, args.entries))
        print(f"replica of {size:,} IMEIs over {'unix socket' if args.unix else 'TCP'}: loaded in {wall:.1f} s "
              f"wall, {cpu:.1f} s CPU of the EIR; resident memory +{grown / 1024:.0f} MB "
              f"({grown * 1024 / max(1, size):.0f} bytes per IMEI)")


if __name__ == "__main__":
    main()
