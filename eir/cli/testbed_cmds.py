"""``eir testbed``: attach scenarios, load generation and the calibration responder (issue 6)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["testbed_group"]


def _hostport(text: str, what: str = "--eir") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"{text!r}: expected HOST:PORT", param_hint=what)
    return host.strip("[]") or "127.0.0.1", int(port)


def _scenario(path: str) -> Any:
    from testbed.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as e:
        raise click.UsageError(f"scenario {path}: {e}") from None


@click.group("testbed")
def testbed_group() -> None:
    """Simulated MMEs against any S13 EIR: attach scenarios with a verdict, load, calibration."""


@testbed_group.command("seed")
@click.option("--scenario", "scenario_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--store", "store_url", required=True, help="Register store URL (memory://PATH, redis://...).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the lists as CSV here.")
def seed_cmd(scenario_path: str, store_url: str, csv_path: str | None) -> None:
    """Write the scenario's lists into an EIR's store (eirlab's public store API)."""
    scen = _scenario(scenario_path)
    plan = scen.build()
    if csv_path:
        from testbed.population import write_list_csv

        with open(csv_path, "w", newline="") as f:
            write_list_csv(f, plan.entries)
    from testbed.seeding import seed_store

    n = asyncio.run(seed_store(store_url, plan.entries))
    click.echo(f"seeded {n:,} entries ({len(plan.devices):,} devices) into {store_url}")


@testbed_group.command("attach")
@click.option("--eir", "eir_addr", required=True, metavar="HOST:PORT", help="The EIR's S13 address.")
@click.option("--scenario", "scenario_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write JSON, PNGs and HTML here.")
@click.option("--pcap", "pcap_path", type=click.Path(dir_okay=False),
              help="pcap file (default: DIR/run.pcap with --report).")
@click.option("--pcap-sample", type=int, default=1, show_default=True, help="Keep one procedure in N.")
@click.option("--seed-store", "seed_url", help="First write the scenario's lists into this store URL.")
@click.option("--transport", type=click.Choice(["tcp", "sctp"]), help="Override every MME's transport.")
@click.option("--quiet", is_flag=True, help="No live progress.")
def attach_cmd(eir_addr: str, scenario_path: str, report_dir: str | None, pcap_path: str | None, pcap_sample: int,
               seed_url: str | None, transport: str | None, quiet: bool) -> None:
    """Run an attach scenario; exit 1 when any outcome is wrong (wrongly accepted/rejected, errors...)."""
    from rich.live import Live

    from eir.diameter.transport import TransportKind
    from testbed.attach import AttachRun, run_attach
    from testbed.progress import attach_line, mme_table, summary_table, verdict_table, wide_console
    from testbed.trace import PcapTrace, pcap_available

    host, port = _hostport(eir_addr)
    scen = _scenario(scenario_path)
    console = wide_console()
    plan = scen.build()
    if seed_url:
        from testbed.seeding import seed_store

        n = asyncio.run(seed_store(seed_url, plan.entries))
        console.print(f"seeded {n:,} entries into {seed_url}")
    if pcap_path is None and report_dir:
        pcap_path = str(Path(report_dir) / "run.pcap")
    if pcap_path and not pcap_available():
        console.print("[yellow]eir.pcap is not available: no pcap written[/]")
        pcap_path = None

    async def go() -> AttachRun:
        tracer = PcapTrace(pcap_path, (host, port), sample=pcap_sample) if pcap_path else None
        live = Live("", console=console, refresh_per_second=4, transient=True) if not quiet else None
        try:
            if live is not None:
                live.start()
            return await run_attach(scen, host, port, transport=TransportKind(transport) if transport else None,
                                    tracer=tracer, plan=plan,
                                    on_progress=(lambda r: live.update(attach_line(r.progress())))
                                    if live is not None else None)
        finally:
            if live is not None:
                live.stop()
            if tracer is not None:
                tracer.close()

    try:
        run = asyncio.run(go())
    except (OSError, ConnectionError, TimeoutError) as e:
        raise click.ClickException(f"cannot reach the EIR at {eir_addr}: {e}") from None
    result = run.to_json()
    console.print(verdict_table(result["verdict"], f"Verdict: {scen.name} ({len(plan.events):,} procedures, "
                                                   f"{scen.subscribers:,} subscribers)"))
    console.print(mme_table(result))
    console.print(summary_table(result))
    if report_dir:
        from testbed.report import write_report

        paths = write_report(result, report_dir, pcap=pcap_path)
        console.print(f"report: {paths['html']}\njson:   {paths['json']}")
    if pcap_path:
        console.print(f"pcap:   {pcap_path}  (tshark -r {pcap_path} -d tcp.port=={port},diameter)")
    ok = result["verdict"]["passed"]
    console.print("[bold green]PASS[/]" if ok else f"[bold red]FAIL[/]: {result['verdict']['wrong']:,} wrong outcomes")
    sys.exit(0 if ok else 1)


@testbed_group.command("load")
@click.option("--eir", "eir_addr", required=True, metavar="HOST:PORT")
@click.option("--rate", type=float, required=True, help="Offered ECRs per second (all workers).")
@click.option("--duration", type=float, required=True, help="Seconds of sending (bounded).")
@click.option("--mmes", type=int, default=None, help="Simulated MMEs (one connection and Origin-Host each).")
@click.option("--workers", type=int, default=None, help="Generator processes (default: 1 below 60k/s, else 2).")
@click.option("--max-requests", type=int, default=None, help="Stop after this many ECRs.")
@click.option("--timeout", type=float, default=2.0, show_default=True)
@click.option("--window", type=int, default=20_000, show_default=True, help="Max requests in flight per worker.")
@click.option("--scenario", "scenario_path", type=click.Path(exists=True, dir_okay=False),
              help="Use its devices (cycled) and check each answer against its expectation.")
@click.option("--arrivals", type=click.Choice(["constant", "ramp", "burst", "poisson"]), default="constant")
@click.option("--realm", default="localdomain", show_default=True, help="Destination-Realm.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False))
@click.option("--pcap", "pcap_path", type=click.Path(dir_okay=False),
              help="Write a sample of the exchanges here (default: DIR/sample.pcap with --report).")
@click.option("--pcap-sample", type=int, default=1000, show_default=True, help="Keep one exchange in N (0: none).")
@click.option("--tick", type=float, default=None,
              help="Milliseconds between sending rounds (default: 0.1, or 1 above 50k/s per worker).")
@click.option("--quiet", is_flag=True)
def load_cmd(eir_addr: str, rate: float, duration: float, mmes: int | None, workers: int | None,
             max_requests: int | None, timeout: float, window: int, scenario_path: str | None, arrivals: str,
             realm: str, report_dir: str | None, pcap_path: str | None, pcap_sample: int, tick: float | None,
             quiet: bool) -> None:
    """Open-loop ECR load; latency from intended send time; exit 1 on wrong answers or timeouts."""
    from rich.live import Live

    from testbed.arrivals import Arrivals
    from testbed.loadgen import LoadConfig, run_load
    from testbed.population import expected_answer
    from testbed.progress import load_line, summary_table, wide_console

    host, port = _hostport(eir_addr)
    if rate <= 0 or duration <= 0 or duration > 3600:
        raise click.UsageError("--rate must be positive and --duration within 0..3600 s")
    if tick is not None and not 0.01 <= tick <= 100:
        raise click.UsageError("--tick must be within 0.01..100 ms")
    workers = workers or (1 if rate < 60_000 else 2)
    devices: tuple[tuple[str, str, str, str, str], ...] = ()
    if scenario_path:
        scen = _scenario(scenario_path)
        plan = scen.build()
        realm = scen.realm
        prof = scen.mmes[0].profile
        devices = tuple((d.imei_as_sent(prof.imei_digits), d.svn, d.imsi,
                         expected_answer(d, plan.lists, scen.unknown).value, d.category)
                        for d in plan.devices if d.category != "emergency_black")
    cfg = LoadConfig(host, port, rate, duration, max_requests=max_requests or int(rate * duration) + 1,
                     workers=workers, mmes=max(mmes or workers, workers), max_in_flight=window, timeout=timeout,
                     realm=realm, arrivals=None if arrivals == "constant" else Arrivals(arrivals, rate=rate),
                     devices=devices, pcap_sample=pcap_sample if (pcap_path or report_dir) else 0,
                     tick=None if tick is None else tick / 1000)
    console = wide_console()
    live = Live("", console=console, refresh_per_second=4, transient=True) if not quiet else None
    if live is not None:
        live.start()
    try:
        res = run_load(cfg, (lambda s: live.update(load_line(s))) if live is not None else None)
    finally:
        if live is not None:
            live.stop()
    result = res.to_json()
    console.print(summary_table(result))
    for err in res.errors:
        console.print(f"[red]{err}[/]")
    wrong = sum(sum(v.values()) for v in res.wrong.values())
    if wrong:
        console.print(f"[red]wrong answers by category: {result['wrong_by_category']}[/]")
    if pcap_path is None and report_dir and cfg.pcap_sample:
        pcap_path = str(Path(report_dir) / "sample.pcap")
    if pcap_path and res.samples:
        from testbed.trace import PcapTrace

        trace = PcapTrace(pcap_path, (host, port))
        for k, req, sent, ans, done in res.samples:
            trace.add_pair(k, req, sent, ans, done)
        trace.close()
        console.print(f"pcap:   {pcap_path} ({len(res.samples):,} sampled exchanges, 1 in {pcap_sample})")
    if report_dir:
        from testbed.report import write_report

        paths = write_report(result, report_dir, pcap=pcap_path)
        console.print(f"report: {paths['html']}\njson:   {paths['json']}")
    sys.exit(1 if (res.errors or wrong or res.timeouts or not res.answered) else 0)


@testbed_group.command("responder")
@click.option("--listen", default="127.0.0.1:3868", show_default=True, metavar="HOST:PORT")
@click.option("--status", type=click.Choice(["white", "grey", "black", "unknown"]), default="white",
              show_default=True, help="The one answer sent to every ECR.")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes sharing the port.")
@click.option("--transport", type=click.Choice(["tcp", "sctp"]), default="tcp", show_default=True)
@click.option("--origin-host", default="responder.testbed", show_default=True)
@click.option("--realm", default="localdomain", show_default=True)
@click.option("--full-stack", is_flag=True, help="Answer through DiameterNode (validating, ~60k/s) not raw bytes.")
def responder_cmd(listen: str, status: str, workers: int, transport: str, origin_host: str, realm: str,
                  full_stack: bool) -> None:
    """Fixed-answer S13 peer: the calibration target that measures the generator itself."""
    from testbed.responder import ResponderConfig, run_responder_process

    host, port = _hostport(listen, "--listen")
    run_responder_process(ResponderConfig(host, port, status, origin_host, realm, transport, full_stack), workers)
