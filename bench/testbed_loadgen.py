"""Load-generator ceiling against the fixed-answer responder (issue 6): 1 and 2 worker processes.

    .venv/bin/python -m bench.testbed_loadgen [--rate 200000] [--duration 5] [--responder-workers 1]

Starts ``eir testbed responder`` as a subprocess on a free loopback port, runs the open-loop
generator at a rate above what it can do, and prints achieved throughput and latency percentiles.
Figures are recorded in BENCHMARKS.md, "## Testbed (issue 6)".
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from testbed.loadgen import LoadConfig, run_load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"responder did not listen on {port}")


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
        wait_port(port)
        print(f"{'workers':>7} {'offered/s':>10} {'answered/s':>11} {'sustained/s':>12} {'timeouts':>9} "
              f"{'p50 ms':>8} {'p99 ms':>8} "
              f"{'p99.9 ms':>9} {'max ms':>8}")
        for rate, w in [(r, w) for r in args.rate for w in args.workers]:
            res = run_load(LoadConfig("127.0.0.1", port, rate, args.duration, workers=w, mmes=w,
                                      max_requests=int(rate * args.duration), timeout=2.0))
            lat = res.to_json()["latency_ms"]
            print(f"{w:>7} {rate:>10.0f} {res.answered / args.duration:>11.0f} "
                  f"{res.throughput:>12.0f} {res.timeouts:>9} "
                  f"{lat['p50']:>8.2f} {lat['p99']:>8.2f} {lat['p99.9']:>9.2f} {lat['max']:>8.2f}", flush=True)
            if res.errors:
                print("  errors:", res.errors)
    finally:
        resp.send_signal(signal.SIGTERM)
        try:
            resp.wait(10)
        except subprocess.TimeoutExpired:
            resp.kill()
            resp.wait()


if __name__ == "__main__":
    main()
