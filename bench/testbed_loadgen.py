"""Load-generator ceiling against the fixed-answer responder (issue 6): 1 and 2 worker processes.

    .venv/bin/python -m bench.testbed_loadgen [--rate 200000] [--duration 5] [--responder-workers 1]

Starts ``eir testbed responder`` as a subprocess on a free loopback port, runs the open-loop
generator at a rate above what it can do, and prints achieved throughput and latency percentiles.
Figures are recorded in BENCHMARKS.md, "## Testbed (issue 6)".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from testbed.loadgen import LoadConfig, run_load
from tests.support.servers import free_port, stop_process, wait_port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=float, nargs="*", default=[150_000, 250_000])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--responder-workers", type=int, default=1)
    args = ap.parse_args()
    port = free_port()
    eir = os.path.join(os.path.dirname(sys.executable), "eir")
    resp = subprocess.Popen([eir, "testbed", "responder", "--listen", f"127.0.0.1:{port}",
                             "--workers", str(args.responder_workers)])
    try:
        wait_port(port, resp, 10)
        print(f"{'workers':>7} {'offered/s':>10} {'answered/s':>11} {'sustained/s':>12} {'timeouts':>9} "
              f"{'p50 ms':>8} {'p99 ms':>8} "
              f"{'p99.9 ms':>9} {'max ms':>8}")
        for rate, w in [(r, w) for r in args.rate for w in args.workers]:
            res = run_load(LoadConfig("127.0.0.1", port, rate, args.duration, workers=w, mmes=w,
                                      max_requests=int(rate * args.duration), timeout=2.0))
            lat = res.to_json()["latency_ms"]
            print(f"{w:>7} {rate:>10.0f} {res.throughput:>11.0f} "
                  f"{res.sustained:>12.0f} {res.timeouts:>9} "
                  f"{lat['p50']:>8.2f} {lat['p99']:>8.2f} {lat['p99.9']:>9.2f} {lat['max']:>8.2f}", flush=True)
            if res.errors:
                print("  errors:", res.errors)
    finally:
        stop_process(resp, 10)


if __name__ == "__main__":
    main()
