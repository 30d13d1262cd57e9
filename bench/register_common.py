"""Shared helpers of the register benchmarks: a private redis-server and a generated register CSV."""

from __future__ import annotations

import contextlib
import platform
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import RedisServer, start_redis

__all__ = ["generate_csv", "import_register", "machine", "private_redis"]


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[RedisServer]:
    """A private redis-server (never 127.0.0.1:6379), stopped by pid at the end."""
    with start_redis(workdir) as server:
        yield server
        if server.proc.poll() is None:
            server.proc.terminate()
            server.proc.wait(timeout=30)


def generate_csv(path: Path, rows: int, *, seed: int = 1) -> list[int]:
    """Write ``rows`` distinct black-listed IMEIs (14-digit keys, 50 reporters); return the keys."""
    rnd = random.Random(seed)
    keys = rnd.sample(range(35_000_000_000_000, 36_000_000_000_000), rows)
    reasons = ("stolen", "lost", "fraud")
    with path.open("w", encoding="ascii") as f:
        f.write("kind,imei,status,reason,reporter\n")
        for i in range(0, rows, 100_000):
            f.writelines(f"imei,{k},black,{reasons[k % 3]},ORG{k % 50}\n" for k in keys[i:i + 100_000])
    return keys


def import_register(workdir: Path, store_url: str, rows: int) -> list[int]:
    """Generate ``rows`` black-listed IMEIs (:func:`generate_csv`) and load them into ``store_url`` with
    ``eir list import``, as an operator would; return the keys."""
    csv = workdir / "register.csv"
    keys = generate_csv(csv, rows)
    eir = Path(sys.executable).parent / "eir"
    subprocess.run([str(eir), "list", "import", str(csv), "--store", store_url, "--reporter", "ORG0", "--force"],
                   check=True, stdout=subprocess.DEVNULL)
    return keys


def machine() -> str:
    import os

    return f"{platform.node()} {os.cpu_count()} CPU, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
