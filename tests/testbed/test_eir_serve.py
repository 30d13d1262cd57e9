"""End-to-end: the testbed against a real ``eir serve`` (Redis store), faults, and a freeDiameter relay.

Every test starts its own processes (private redis-server, eir serve, freeDiameterd) on free ports and
stops them by pid. Nothing asserts on wall-clock timing: fault tests only assert that failures were
counted and that the run completed and judged every procedure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testbed.attach import run_attach
from testbed.population import CATEGORIES
from testbed.scenario import parse_scenario
from testbed.seeding import seed_store
from tests.support.servers import free_port, start_redis, stop_process, wait_port

EIR = str(Path(sys.executable).with_name("eir"))
SCEN = {
    "name": "e2e", "seed": 5,
    "mmes": [{"name": "o", "profile": "open5gs"}, {"name": "v", "profile": "vectorcore"},
             {"name": "m", "profile": "magma"}],
    "population": {"subscribers": 500, "movers": 0.2, "tau": 0.2, "mix": {c: 1 for c in CATEGORIES}},
    "arrivals": {"rate": 2000}, "timeout": 2.0,
}


@contextmanager
def eir_serve(store: str, port: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([EIR, "serve", "--listen", f"127.0.0.1:{port}", "--store", store,
                             "--log-level", "warning", *extra], env={**os.environ})
    try:
        wait_port(port, proc)
        yield proc
    finally:
        stop_process(proc)


@pytest.mark.redis
async def test_every_category_against_eir_serve_redis(tmp_path: Path) -> None:
    scen = parse_scenario(SCEN)
    plan = scen.build()
    with start_redis(tmp_path / "redis") as redis:
        url = f"redis://127.0.0.1:{redis.port}/0"
        await seed_store(url, plan.entries)
        port = free_port()
        with eir_serve(url, port):
            run = await run_attach(scen, "127.0.0.1", port, plan=plan)
    v = run.verdict
    assert v.passed, v.examples[:5]
    assert set(CATEGORIES) <= set(v.table)
    assert run.done == len(plan.events)


@pytest.mark.redis
@pytest.mark.parametrize(("fail", "expect_kind"), [("closed", "error"), ("open-grey", "wrongly_accepted")])
async def test_redis_stopped_shows_the_fail_policy(tmp_path: Path, fail: str, expect_kind: str) -> None:
    scen = parse_scenario(SCEN)
    plan = scen.build()
    with start_redis(tmp_path / "redis") as redis:
        url = f"redis://127.0.0.1:{redis.port}/0?timeout=0.5"
        await seed_store(url, plan.entries)
        port = free_port()
        with eir_serve(url, port, "--fail", fail):
            redis.stop()
            run = await run_attach(scen, "127.0.0.1", port, plan=plan)
    v = run.verdict
    assert not v.passed
    black = v.table["black_imei"]
    assert black[expect_kind] > 0, dict(black)
    if fail == "closed":
        assert v.answers["unable"] > 0  # 5012 DIAMETER_UNABLE_TO_COMPLY
    else:
        assert v.answers["grey"] > 0
    assert run.done == len(plan.events)


async def test_eir_restarted_mid_run_reconnects_and_counts_failures(tmp_path: Path) -> None:
    scen = parse_scenario({**SCEN, "arrivals": {"rate": 300}, "timeout": 1.0})
    plan = scen.build()
    store = f"memory://{tmp_path}/reg.eir"
    await seed_store(store, plan.entries)
    port = free_port()
    started = asyncio.Event()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen([EIR, "serve", "--listen", f"127.0.0.1:{port}", "--store", store,
                              "--log-level", "warning"])
        procs.append(p)
        return p

    first = start()
    await asyncio.to_thread(wait_port, port, first)

    async def restart() -> None:
        await started.wait()
        await asyncio.sleep(0.8)
        first.send_signal(signal.SIGKILL)  # a crash: no DPR, in-flight requests are lost
        await asyncio.to_thread(first.wait, 10)
        second = start()
        await asyncio.to_thread(wait_port, port, second)

    task = asyncio.create_task(restart())
    try:
        run = await run_attach(scen, "127.0.0.1", port, plan=plan, on_start=lambda r: started.set())
        await task
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(15)
    t = run.verdict.totals()
    assert run.done == len(plan.events)
    assert run.reconnects >= 1
    assert t["timeout"] + t["error"] > 0  # the failures were counted ...
    assert t["ok"] > 0  # ... and the run went on after the restart
    assert not run.verdict.passed


@pytest.mark.interop
async def test_attach_through_freediameter_relay(tmp_path: Path) -> None:
    from tests.support.freediameter import freediameter, require_freediameterd

    require_freediameterd()
    scen = parse_scenario({**SCEN, "population": {**SCEN["population"], "subscribers": 200}})
    plan = scen.build()
    store = f"memory://{tmp_path}/reg.eir"
    await seed_store(store, plan.entries)
    port = free_port()
    with eir_serve(store, port):
        async with freediameter(
            tmp_path / "fd", "dra.dra.test", "dra.test",
            connect_peers=[("eir.localdomain", "127.0.0.1", port)],
            acl_wl=[m.origin_host for m in scen.mmes],
            rt_default=['dr="localdomain" : "eir.localdomain" += DEFAULT ;'],
        ) as fd:
            await fd.await_open("eir.localdomain")
            run = await run_attach(scen, "127.0.0.1", fd.port, plan=plan)
            await fd.astop()
    assert run.verdict.passed, run.verdict.examples[:5]
    assert run.done == len(plan.events)
