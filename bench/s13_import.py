"""Latency of a serving ``eir serve`` worker while a list import runs beside it, second by second (issue 5).

    .venv/bin/python -m bench.s13_import [--entries 1000000] [--import-rows 500000] [--rate 20000]
        [--duration 20] [--at 5] [--servers eir-tcp eir-replica]

A lab loads lists while its EIR answers ("reload of lists without restart"). This starts a private
redis-server holding ``--entries`` black-listed IMEIs, one ``eir serve`` worker (with Redis over TCP, and
again holding a replica of the register, ``--replica-max-entries``, once it is loaded), drives it at
``--rate`` with requests drawn from the listed IMEIs (``testbed.loadgen``, as ``bench.s13_server`` does), and
``--at`` seconds after starting the generator (which takes a second or two to send) runs ``eir list
import`` of ``--import-rows`` new IMEIs, as an operator would. Printed: p50 / p99 / max of each second of the
load, the import's duration, and the whole run's figures. Everything (generator, EIR, redis-server and the
importer) shares the machine's cores.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.register_common import generate_csv, import_register, machine, private_redis
from bench.s13_server import cpu_seconds, eir_serve, serving
from testbed.loadgen import LoadConfig, run_load

BIN = Path(sys.executable).parent


def run(name: str, replica: bool, store_url: str, more: Path, devices: tuple[tuple[str, str, str, str, str], ...],
        args: argparse.Namespace) -> None:
    cmd = eir_serve(store_url, 2 * (args.entries + args.import_rows) if replica else 0)
    importer: list[str] = []

    def do_import() -> None:
        start = time.perf_counter()
        subprocess.run([str(BIN / "eir"), "list", "import", str(more), "--store", store_url, "--reporter", "ORG0",
                        "--force"], check=True, stdout=subprocess.DEVNULL)
        importer.append(f"{time.perf_counter() - start:.1f} s")

    with serving(name, cmd) as served:
        timer = threading.Timer(args.at, do_import)
        cpu0 = cpu_seconds(served.proc.pid)
        timer.start()
        res = run_load(LoadConfig("127.0.0.1", served.port, args.rate, args.duration,
                                  max_requests=int(args.rate * args.duration), workers=1, mmes=1, devices=devices,
                                  timeout=5.0, max_in_flight=20_000))
        timer.join()
        cpu = cpu_seconds(served.proc.pid) - cpu0
    summary = res.to_json()
    lat = summary["latency_ms"]
    print(f"\n## {name}: import of {args.import_rows:,} rows started {args.at:g} s into the load, took "
          f"{importer[0] if importer else '?'} (the generator's clock starts at its first second)")
    print(f"whole run: {res.answered:,} answers, {res.timeouts} timeouts, p50 {lat['p50']:.2f} ms, "
          f"p99 {lat['p99']:.2f} ms, max {lat['max']:.1f} ms; EIR CPU {1e6 * cpu / max(1, res.answered):.0f} µs "
          "per answer")
    print("| second | answers | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|")
    for row in summary["timeline"]:
        if row["sent"] or row["completed"]:
            print(f"| {row['t']:.0f} | {row['completed']:,} | {row.get('p50', 0.0):.2f} | {row.get('p99', 0.0):.2f} | "
                  f"{row.get('max', 0.0):.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--import-rows", type=int, default=500_000)
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--at", type=float, default=5.0, help="seconds into the load when the import starts")
    ap.add_argument("--servers", nargs="+", choices=("eir-tcp", "eir-replica"), default=["eir-tcp", "eir-replica"])
    args = ap.parse_args()
    print(f"# {machine()}; {args.entries:,} listed IMEIs, requests drawn from all of them at {args.rate:,.0f}/s; "
          f"an import of {args.import_rows:,} new IMEIs meanwhile")
    for server in args.servers:
        # A fresh register for each server: the second must not find the first one's import already done.
        with tempfile.TemporaryDirectory(prefix="eir-bench-") as tmp, private_redis(Path(tmp) / "redis") as rs:
            keys = import_register(Path(tmp), rs.url, args.entries)
            more = Path(tmp) / "more.csv"
            generate_csv(more, args.import_rows, seed=2)
            sample = random.Random(7).sample(keys, len(keys))
            devices = tuple((str(k), "01", "", "", "listed") for k in sample)
            replica = server == "eir-replica"
            run("eir serve (Redis TCP + replica, 1 worker)" if replica else "eir serve (Redis TCP, 1 worker)",
                replica, rs.url, more, devices, args)


if __name__ == "__main__":
    main()
