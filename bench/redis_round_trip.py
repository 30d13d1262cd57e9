"""What one store round trip of the EIR costs, layer by layer (issue 5).

    .venv/bin/python -m bench.redis_round_trip [--entries 100000] [--keys 2] [--count 20000]

Starts a private redis-server (unix socket), imports ``--entries`` black-listed IMEIs with ``eir list
import``, then times ``--count`` sequential round trips of ``--keys`` listed IMEIs each (``--keys 2`` is
what one read carries at 20k ECR/s from a generator that sends every 0.1 ms), three ways:

* a blocking unix socket sending the EIR's ``EVALSHA`` and parsing the reply with hiredis: the floor,
  almost all of it the kernel's (send, sleep, wake-up);
* :meth:`eir.register.redis_lookup.LookupChannel.lookup` on the event loop (uvloop);
* :meth:`eir.register.service.EquipmentChecker.verdicts`, as the S13 front end calls it on cache misses.

It prints CPU time (user + system of this process) and wall time per round trip. The difference between
the rows is what each layer adds; what the floor costs says how much batching can save.
"""

from __future__ import annotations

import argparse
import random
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import hiredis
import uvloop

from bench.register_common import import_register, machine, private_redis
from eir.register import open_store
from eir.register.policy import Policy
from eir.register.redis_lookup import _SHA, _command
from eir.register.redis_store import RedisStore
from eir.register.service import EquipmentChecker
from tests.support.servers import RedisServer


def _row(label: str, count: int, cpu: float, wall: float) -> None:
    print(f"| {label} | {1e6 * cpu / count:.1f} | {1e6 * wall / count:.1f} |", flush=True)


def _blocking(path: str, payloads: list[bytes]) -> tuple[float, float]:
    reader = hiredis.Reader()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        c0, w0 = time.process_time(), time.perf_counter()
        for p in payloads:
            s.sendall(p)
            reply: object = False
            while reply is False:
                reader.feed(s.recv(65536))
                reply = reader.gets()
            if isinstance(reply, hiredis.ReplyError):
                raise SystemExit(f"redis: {reply}")
        return time.process_time() - c0, time.perf_counter() - w0


async def _timed(calls: list[Callable[[], Awaitable[object]]]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    for call in calls:
        await call()
    return time.process_time() - c0, time.perf_counter() - w0


async def _measure(rs: RedisServer, keys: list[str], args: argparse.Namespace) -> None:
    store = open_store(rs.unix_url)
    assert isinstance(store, RedisStore)
    checker = EquipmentChecker(store, Policy(), cache_size=1)  # every check a miss: one round trip each
    await checker.start()
    try:
        n, k = args.count, args.keys
        groups = [[keys[(i * k + j) % len(keys)] for j in range(k)] for i in range(n)]
        channel = store._channel
        assert channel is not None
        payloads = [_command(b"EVALSHA", _SHA, b"0", str(store.buckets).encode(), channel.prefix,
                             ",".join(g).encode()) for g in groups]
        await channel.lookup(groups[0], store.buckets)  # the script is loaded
        for _ in range(args.repeat):
            _row("LookupChannel.lookup (event loop)", n, *await _timed(
                [partial(channel.lookup, g, store.buckets) for g in groups]))
            checks = [[(key, None, None, None) for key in g] for g in groups]
            _row("EquipmentChecker.verdicts (event loop)", n, *await _timed(
                [partial(checker.verdicts, c) for c in checks]))
        # Last: it holds the loop for seconds, which the checker's change feed takes for a lost connection.
        for _ in range(args.repeat):
            _row("blocking socket, EVALSHA + hiredis", n, *_blocking(str(rs.unix_path), payloads))
    finally:
        await checker.stop()
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=2, help="IMEIs per round trip")
    ap.add_argument("--count", type=int, default=20_000, help="round trips per row")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    print(f"# {machine()}; {args.keys} listed IMEIs per round trip, {args.count:,} round trips per row; "
          "redis-server over its unix socket")
    print("| path | CPU µs per round trip | wall µs per round trip |")
    print("|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="eir-bench-") as tmp, private_redis(Path(tmp) / "redis") as rs:
        keys = import_register(Path(tmp), rs.url, args.entries)
        listed = [str(k) for k in random.Random(3).sample(keys, len(keys))]
        uvloop.run(_measure(rs, listed, args))


if __name__ == "__main__":
    main()
