"""Run an attach scenario against an S13 EIR: simulated MMEs, open-loop schedule, verdict, latency.

Every event of the scenario's plan starts at its intended time (open loop); its latency runs from
that time to the MME's decision. Results are judged against the scenario's expectations only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eir.diameter.transport import TransportKind
from testbed.latency import LatencyRecorder, summarize
from testbed.mme import SimulatedMme, Tracer
from testbed.profiles import Procedure
from testbed.scenario import Plan, Scenario
from testbed.verdict import Verdict, judge

__all__ = ["AttachRun", "run_attach"]


@dataclass
class AttachRun:
    """Everything an attach run produced."""

    scenario: Scenario
    plan: Plan
    verdict: Verdict = field(default_factory=Verdict)
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)
    throughput: Counter[int] = field(default_factory=Counter)  # completions per second
    started: float = 0.0
    elapsed: float = 0.0
    done: int = 0
    reconnects: int = 0
    by_mme: dict[str, Counter[str]] = field(default_factory=dict)

    def progress(self) -> dict[str, Any]:
        t = self.verdict.totals()
        return {"done": self.done, "total": len(self.plan.events), "elapsed": time.monotonic() - self.started,
                "ok": t.get("ok", 0), "wrong": sum(n for k, n in t.items() if k != "ok"),
                "latency": summarize(self.latency.total), "answers": dict(self.verdict.answers)}

    def to_json(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "kind": "attach", "scenario": s.name, "seed": s.seed, "subscribers": s.subscribers,
            "events": len(self.plan.events), "completed": self.done, "elapsed_s": round(self.elapsed, 3),
            "mmes": [{"name": m.name, "origin_host": m.origin_host, "profile": m.profile.name,
                      "imei_digits": m.profile.imei_digits, "outcomes": dict(self.by_mme.get(m.name, {}))}
                     for m in s.mmes],
            "categories": self.plan.category_counts(), "list_entries": len(self.plan.entries),
            "verdict": self.verdict.to_json(), "latency_ms": summarize(self.latency.total),
            "timeline": [{**row, "completed": self.throughput.get(round(row["t"] / self.latency.resolution), 0)
                          / self.latency.resolution} for row in self.latency.timeline()],
            "reconnects": self.reconnects,
        }


async def run_attach(scenario: Scenario, host: str, port: int, *, transport: TransportKind | None = None,
                     tracer: Tracer | None = None, on_progress: Callable[[AttachRun], None] | None = None,
                     plan: Plan | None = None, on_start: Callable[[AttachRun], None] | None = None) -> AttachRun:
    """Connect every MME, run every event of the plan at its time, judge each result."""
    plan = plan if plan is not None else scenario.build()
    run = AttachRun(scenario, plan)
    span = plan.events[-1].at if plan.events else 0.0
    bucket = 0.25 if span < 20 else 1.0 if span < 300 else 5.0
    run.latency.resolution = bucket
    mmes = [SimulatedMme(spec, eir_realm=scenario.realm, destination_host=scenario.destination_host,
                         timeout=scenario.timeout, tracer=tracer) for spec in scenario.mmes]
    loop = asyncio.get_running_loop()
    try:
        for m in mmes:
            await m.connect(host, port, transport)
        for spec in scenario.mmes:
            run.by_mme[spec.name] = Counter()
        run.started = time.monotonic()
        t0 = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()

        failures: list[BaseException] = []

        def done_cb(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        async def one(i: int) -> None:
            ev = plan.events[i]
            d = plan.devices[ev.device]
            mme = mmes[ev.mme]
            res = await mme.run(d, ev.procedure, t0 + ev.at)
            kind = judge(ev.expected_answer, ev.expected, res.answer, res.outcome)
            example = None
            if kind != "ok":
                example = {"device": d.index, "category": d.category, "imei": d.imei[:8] + "******",
                           "imsi": d.imsi, "mme": mme.spec.name, "profile": mme.profile.name,
                           "procedure": ev.procedure.value,
                           "expected_answer": ev.expected_answer.value if ev.expected_answer else None,
                           "observed_answer": res.answer.value if res.answer else None,
                           "result_code": res.result_code, "expected": str(ev.expected),
                           "observed": str(res.outcome), "kind": kind}
            cat = d.category if ev.procedure is not Procedure.TAU else f"{d.category}/tau"
            run.verdict.add(cat, kind, example, answer=res.answer.value if res.answer else "no-check",
                            outcome=str(res.outcome))
            run.by_mme[mme.spec.name][str(res.outcome)] += 1
            sec = int((time.monotonic() - t0) / bucket)
            run.latency.record(sec, int(res.latency * 1e6))
            run.throughput[sec] += 1
            run.done += 1

        if on_start is not None:
            on_start(run)
        last_progress = time.monotonic()
        for i, ev in enumerate(plan.events):
            delay = t0 + ev.at - time.monotonic()
            if delay > 0.001:
                await asyncio.sleep(delay)
            task = loop.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(done_cb)
            if on_progress is not None and time.monotonic() - last_progress > 0.25:
                last_progress = time.monotonic()
                on_progress(run)
        while tasks:
            await asyncio.wait(set(tasks), timeout=0.25)
            if on_progress is not None:
                on_progress(run)
        if failures:
            raise RuntimeError(f"{len(failures)} procedures failed inside the testbed") from failures[0]
        run.elapsed = time.monotonic() - run.started
        run.reconnects = sum(m.reconnects for m in mmes)
    finally:
        for m in mmes:
            await m.close()
    return run
