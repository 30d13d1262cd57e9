"""Answers per second and latency of one ``eir serve`` worker with Redis (issue 5).

    .venv/bin/python -m bench.s13_server [--entries 1000000] [--duration 5] [--rate 20000] [--tick MS]
        [--servers eir-tcp eir-unix eir-replica responder naive] [--pin]

Starts a private redis-server, imports ``--entries`` black-listed IMEIs (1M by default) with
``eir list import``, starts one ``eir serve`` worker on it (once over TCP, once over the server's unix
socket, as an EIR next to its Redis would use it, and once over TCP holding a replica of the register,
``--replica-max-entries``, measured once the replica is loaded), and drives it with the testbed's open-loop
load generator (``testbed.loadgen``, one worker process; generator, server and redis-server share the
machine's cores), with requests drawn from the listed population (``--population``). Two measurements each:

* saturation: offered load well above capacity for ``--duration`` s -> answers per second, the median of the
  per-second answer counts while the generator sends (:attr:`testbed.loadgen.LoadResult.sustained`; before
  2026-12-04's fifth session the bench divided all answers by ``--duration`` although a generator behind
  schedule sends for longer, which overstated saturation);
* fixed rate (``--rate``, 20k/s; ``--repeat`` runs, 3 by default) -> p50 / p99 / p99.9 latency, from the
  intended send time. The generator sends every 0.1 ms (``--tick``; a ``timerfd``, :mod:`testbed.ticker`),
  so it holds a request back by at most that long.

Each row also gives the CPU time per answer of the server, redis-server and the generator (from /proc and
getrusage, user + system; the generator's includes building its templates): on a shared VM whose latency
figures vary from run to run, these compare two versions of the code better than a tail does.

Side by side, in the same run: the fixed-answer responder (``eir testbed responder``: the ceiling of the
machine for a Diameter server in Python) and the naive EIR built on python-diameter (``bench/naive_eir.py``:
threads and one Redis GET per request, a fresh process per row: :func:`runs_of`). The last lines give each
EIR's saturation as a share of the responder's and a multiple of the naive EIR's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import redis

from bench.register_common import import_register, machine, private_redis
from testbed.loadgen import LoadConfig, LoadResult, run_load
from tests.support.servers import free_port, stop_process, wait_port

BIN = Path(sys.executable).parent
SERVERS = ("eir-tcp", "eir-unix", "eir-replica", "responder", "naive")
#: The naive EIR's offered load for its saturation row (see :func:`runs_of`).
NAIVE_SATURATE = 4_000.0
#: A saturation run's answers per second and the requests per second it was offered.
Saturation = tuple[float, float]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (/proc/PID/stat, proc(5) fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU time of this process's finished children: the load generator's worker processes."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def server_histogram(admin: int) -> dict[float, float]:
    """Cumulative buckets of ``eir_request_latency_seconds`` from the EIR's own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[float, float] = {}
    for m in re.finditer(r'^eir_request_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M):
        out[float(m.group(1))] = float(m.group(2))
    return out


def wait_for_replica(admin: int, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> float:
    """Wait until the EIR's replica holds the whole register (``eir_replica_complete``); return the seconds."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout and proc.poll() is None:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as r:
            if re.search(r"^eir_replica_complete 1\.0$", r.read().decode(), re.M):
                return time.perf_counter() - start
        time.sleep(0.5)
    raise RuntimeError(f"the EIR's replica was not complete within {timeout:.0f} s")


def quantile_bound(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound (s) of the bucket holding quantile ``q`` of what was observed between the scrapes."""
    total = after[float("inf")] - before.get(float("inf"), 0.0)
    for bound in sorted(after):
        if after[bound] - before.get(bound, 0.0) >= q * total:
            return bound
    return float("inf")


def share_above(before: dict[float, float], after: dict[float, float], bound: float) -> float:
    """The share of what was observed between the scrapes that took longer than ``bound`` (a bucket bound)."""
    total = after[float("inf")] - before.get(float("inf"), 0.0)
    return 1.0 - (after[bound] - before.get(bound, 0.0)) / total if total else 0.0


def runs_of(name: str, args: argparse.Namespace) -> list[list[tuple[str, float, float]]]:
    """The measurements of one server, grouped by server process: each group gets a fresh one.

    For the EIR and the responder, one process: the fixed rate first (``--repeat`` times: on a shared VM one
    run's tail says little), then saturation (it leaves the server a backlog that would still be draining).
    The naive EIR gets a process per run: once offered 20k/s, python-diameter stays wedged ("does not
    currently accept any messages") and answered nothing in a saturation run that followed (the bench's rows
    before 2026-12-05). Its saturation is measured at ``NAIVE_SATURATE``, above what it answers (about
    1,200-2,400/s on the 2026-12-05 VM), not at the EIR's rate, where it wedges too.
    """
    if "naive" in name:
        return [[("saturation", NAIVE_SATURATE, args.duration)], [("fixed", args.rate, args.duration)]]
    return [[("fixed", args.rate, args.duration)] * args.repeat + [("saturation", args.saturate, args.duration)]]


def measure(name: str, port: int, devices: tuple[tuple[str, str, str, str, str], ...], args: argparse.Namespace,
            runs: list[tuple[str, float, float]], admin: int | None, pids: tuple[int, int]) -> Saturation | None:
    """Print the rows of one server process; answer its saturation figure and the load offered for it
    (answers/s, requests/s) if it was measured.

    ``pids`` are the server's and redis-server's (for CPU per answer).
    """
    saturation: Saturation | None = None
    if args.pin:
        # The server alone on CPU 0; redis-server and the generator (spawned from this process) on CPU 1.
        os.sched_setaffinity(pids[0], {0})
        os.sched_setaffinity(pids[1], {1})
        os.sched_setaffinity(0, {1})
    for label, rate, duration in runs:
        before = server_histogram(admin) if admin is not None and label == "fixed" else {}
        cpu0 = (cpu_seconds(pids[0]), cpu_seconds(pids[1]), children_cpu())
        res: LoadResult = run_load(LoadConfig(
            "127.0.0.1", port, rate, duration, max_requests=int(rate * duration), workers=1, mmes=1,
            devices=devices, timeout=5.0, max_in_flight=4096 if label == "saturation" else 20_000,
            tick=None if args.tick is None else args.tick / 1000,
        ))
        cpu1 = (cpu_seconds(pids[0]), cpu_seconds(pids[1]), children_cpu())
        per = [f"{1e6 * (b - a) / res.answered:.0f}" if res.answered else "-" for a, b in zip(cpu0, cpu1, strict=True)]
        lat = res.to_json()["latency_ms"]
        print(f"| {name} | {label} {rate:,.0f}/s | {res.sustained:,.0f} | {res.timeouts} | "
              f"{lat['p50']:.2f} | {lat['p99']:.2f} | {lat['p99.9']:.2f} | {lat['max']:.1f} | "
              f"{' / '.join(per)} |", flush=True)
        if label == "saturation":
            saturation = (res.sustained, rate)
        if before:
            after = server_histogram(admin)  # type: ignore[arg-type]
            p50, p99 = (quantile_bound(before, after, q) * 1e3 for q in (0.5, 0.99))
            over = ", ".join(f"{share_above(before, after, b):.2%} over {b * 1e3:g} ms" for b in (0.0005, 0.001, 0.002))
            print(f"#   {name}, {label}: its own histogram (request decoded -> answer queued; cache hits count 0): "
                  f"p50 <= {p50:g} ms, p99 <= {p99:g} ms; {over}", flush=True)
    if args.pin:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    return saturation


def print_ratios(saturation: dict[str, Saturation]) -> None:
    """Each EIR's saturation against the responder's (the ceiling) and the naive EIR's, from this run.

    A server that answered (nearly) all it was offered was not saturated: its figure is only a lower bound,
    and the ratios say so ("at least", "at most", or nothing to conclude when both sides are bounds).
    """

    def unsaturated(name: str) -> bool:
        value, offered = saturation[name]
        return value >= 0.99 * offered

    def ratio(mine: str, other: str, fmt: str) -> str:
        text = format(saturation[mine][0] / saturation[other][0], fmt)
        if unsaturated(mine) and unsaturated(other):
            return f"{text} (neither saturated)"
        if unsaturated(mine):
            return f"at least {text}"
        return f"at most {text}" if unsaturated(other) else text

    others = [("fixed-answer responder", ".0%", " of the responder's"),
              ("naive python-diameter EIR", ",.1f", "x the naive EIR's")]
    for name, (value, _) in saturation.items():
        if not name.startswith("eir serve"):
            continue
        parts = [f"{ratio(name, other, fmt)}{what} {saturation[other][0]:,.0f}/s"
                 for other, fmt, what in others if saturation.get(other, (0.0, 0.0))[0] > 0]
        lower = "at least " if unsaturated(name) else ""
        print(f"# ratio: {name} at saturation, {lower}{value:,.0f}/s: {'; '.join(parts)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=20_000, help="the fixed rate for the latency figures")
    ap.add_argument("--saturate", type=float, default=240_000,
                    help="offered load for the saturation figure (before 2026-12-05: 90,000/s, which the EIR "
                         "answered in full on that day's VM)")
    ap.add_argument("--tick", type=float, default=None, help="generator tick in ms (default: testbed.loadgen's)")
    ap.add_argument("--repeat", type=int, default=3, help="fixed-rate runs per server (each its own row)")
    ap.add_argument("--population", type=int, default=None,
                    help="IMEIs the requests are drawn from (default: all --entries, as issue 5 specifies)")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS),
                    help="which servers to measure (default: all)")
    ap.add_argument("--pin", action="store_true",
                    help="pin the server to CPU 0, redis-server and the generator to CPU 1 (needs 2 CPUs)")
    args = ap.parse_args()
    if args.skip_naive and "naive" in args.servers:
        args.servers.remove("naive")
    tick = "default tick" if args.tick is None else f"tick {args.tick:g} ms"
    pop = min(args.entries, args.population or args.entries)
    pinned = "; pinned: server CPU 0, redis and generator CPU 1" if args.pin else ""
    print(f"# {machine()}; {args.entries:,} listed IMEIs, requests drawn from {pop:,} of them; "
          f"load generator: testbed.loadgen, 1 process, {tick}{pinned}")
    print("| server | load | answers/s | timeouts | p50 ms | p99 ms | p99.9 ms | max ms | CPU µs per answer: "
          "server / redis / generator |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="eir-bench-") as tmp, private_redis(Path(tmp) / "redis") as rs:
        t0 = time.perf_counter()
        keys = import_register(Path(tmp), rs.url, args.entries)
        print(f"# generated and imported {args.entries:,} entries in {time.perf_counter() - t0:.1f}s", flush=True)
        rnd = random.Random(7)
        sample = rnd.sample(keys, min(len(keys), args.population or len(keys)))
        devices = tuple((str(k), "01", "", "", "listed") for k in sample)
        known = {
            "eir-tcp": ("eir serve (Redis TCP, 1 worker)", eir_serve(rs.url)),
            "eir-unix": ("eir serve (Redis unix socket, 1 worker)", eir_serve(rs.unix_url)),
            "eir-replica": ("eir serve (Redis TCP + replica, 1 worker)", eir_serve(rs.url, max(1, 2 * args.entries))),
            "responder": ("fixed-answer responder", [str(BIN / "eir"), "testbed", "responder", "--status", "black"]),
        }
        servers = [known[k] for k in SERVERS if k in args.servers and k in known]
        if "naive" in args.servers:
            r = redis.Redis.from_url(rs.url)
            pipe = r.pipeline(transaction=False)
            for i, k in enumerate(sample):
                pipe.set(f"eir:naive:{k}", 1)
                if i % 10_000 == 9_999:
                    pipe.execute()
            pipe.execute()
            servers.append(("naive python-diameter EIR", [str(BIN / "python"), "-m", "bench.naive_eir", "--redis",
                                                          rs.url, "--peer", "load-mme1.testbed.localdomain"]))
        saturation: dict[str, Saturation] = {}
        for name, cmd in servers:
            for runs in runs_of(name, args):
                value = serve_and_measure(name, cmd, runs, devices, args, rs.proc.pid)
                if value is not None:
                    saturation[name] = value
        print_ratios(saturation)


class Served(NamedTuple):
    """A server process started by :func:`serving`."""

    proc: subprocess.Popen[bytes]
    port: int
    #: The admin port of an ``eir serve`` (its /metrics), else None.
    admin: int | None
    #: For an EIR with a replica: the seconds it took to load, waited for before anything is measured.
    replica_seconds: float | None


def eir_serve(store_url: str, replica_max_entries: int = 0) -> list[str]:
    """The command line of one bench ``eir serve`` worker, without its listening flags (:func:`serving`)."""
    cmd = [str(BIN / "eir"), "serve", "--log-level", "warning", "--origin-realm", "localdomain", "--store", store_url]
    return [*cmd, "--replica-max-entries", str(replica_max_entries)] if replica_max_entries else cmd


@contextlib.contextmanager
def serving(name: str, cmd: list[str]) -> Iterator[Served]:
    """Start server ``name`` (``cmd`` and the listening flags it takes), wait until it answers (and, for a
    replica, until it is loaded), and stop it by its pid at the end."""
    port = free_port()
    flag = ["--port", str(port)] if "naive" in name else ["--listen", f"127.0.0.1:{port}"]
    admin = free_port() if name.startswith("eir serve") else None
    if admin is not None:
        flag += ["--admin-listen", f"127.0.0.1:{admin}"]
    proc = subprocess.Popen([*cmd, *flag], env={**os.environ, "PYTHONPATH": os.getcwd()},
                            stdout=subprocess.DEVNULL)
    try:
        wait_port(port, proc, 60)
        if admin is not None:
            wait_port(admin, proc, 60)
        loaded = wait_for_replica(admin, proc) if admin is not None and "replica" in name else None
        yield Served(proc, port, admin, loaded)
    finally:
        stop_process(proc, 20)


def serve_and_measure(name: str, cmd: list[str], runs: list[tuple[str, float, float]],
                      devices: tuple[tuple[str, str, str, str, str], ...], args: argparse.Namespace,
                      redis_pid: int) -> Saturation | None:
    """Start one server process, measure ``runs`` on it, stop it; answer its saturation figure if measured."""
    with serving(name, cmd) as served:
        if served.replica_seconds is not None:
            print(f"# replica of {args.entries:,} entries loaded in {served.replica_seconds:.1f}s "
                  "(while serving, before the measurement)", flush=True)
        return measure(name, served.port, devices, args, runs, served.admin, (served.proc.pid, redis_pid))

if __name__ == "__main__":
    main()
