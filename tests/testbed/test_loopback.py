"""Loopback tests: the simulated MMEs against an in-test S13 EIR (a dict), the responder, eir serve."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eir.diameter.transport import DiameterNode, NodeConfig, PeerLink
from protocols.diameter import Avp, LocalNode, Message
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.peer import PeerConfig
from testbed.attach import run_attach
from testbed.eca import EirAnswer
from testbed.mme import S13_DICTIONARY, mme_capabilities
from testbed.population import CATEGORIES, Lists, expected_answer
from testbed.report import write_report
from testbed.responder import ResponderConfig, answer_template, serve_responder
from testbed.scenario import parse_scenario
from testbed.trace import PcapTrace
from tests.support.servers import free_port, wait_port

SCEN = {
    "name": "loop", "seed": 11,
    "mmes": [{"name": "a", "profile": "open5gs"}, {"name": "b", "profile": "vectorcore"},
             {"name": "c", "profile": "osmocom", "policy": {"grey": "illegal_me"}}],
    "population": {"subscribers": 600, "movers": 0.2, "tau": 0.2, "mix": {c: 1 for c in CATEGORIES}},
    "arrivals": {"rate": 3000}, "timeout": 2.0,
}


async def dict_eir(lists: Lists, port: int, *, lie_black_as_white: bool = False) -> DiameterNode:
    """A tiny S13 EIR answering from the scenario's own lists (optionally wrong on purpose)."""
    node_id = LocalNode("eir.test", "localdomain")
    templates = {a: answer_template(node_id, a.value) for a in (EirAnswer.WHITE, EirAnswer.GREY,
                                                                 EirAnswer.BLACK, EirAnswer.UNKNOWN)}
    from protocols.diameter import base_rfc6733 as base
    from protocols.diameter.answers import AnswerTemplate
    invalid = AnswerTemplate((Avp.new(base.RESULT_CODE, 5004),
                              Avp.new(base.AUTH_SESSION_STATE, 1), *node_id.origin_avps))
    from testbed.population import Device

    def handler(link: PeerLink, batch: list[Message]) -> None:
        for req in batch:
            ti = req.find(s13.TERMINAL_INFORMATION)
            imei_avp = ti.find(s13.IMEI) if ti is not None else None
            imei = imei_avp.value(s13.IMEI) if imei_avp is not None else ""
            imsi = req.get(base.USER_NAME)
            imei = imei[:14] if len(imei) == 15 and imei.isdigit() else imei
            ans = expected_answer(Device(0, imsi, imei, "00", "x", 0), lists)
            if lie_black_as_white and ans is EirAnswer.BLACK:
                ans = EirAnswer.WHITE
            tmpl = invalid if ans is EirAnswer.INVALID else templates[ans]
            link.answer(tmpl.render(req), req)

    caps = mme_capabilities("eir.test", "localdomain")
    node = DiameterNode(NodeConfig(PeerConfig(caps, S13_DICTIONARY, watchdog_interval=30.0)), handler)
    await node.listen("127.0.0.1", port)
    return node


async def test_attach_scenario_against_dict_eir_passes_and_reports(tmp_path: Path) -> None:
    scen = parse_scenario(SCEN)
    plan = scen.build()
    port = free_port()
    eir = await dict_eir(plan.lists, port)
    trace = PcapTrace(tmp_path / "run.pcap", ("127.0.0.1", port))
    try:
        run = await run_attach(scen, "127.0.0.1", port, plan=plan, tracer=trace)
    finally:
        trace.close()
        await eir.close()
    result = run.to_json()
    assert result["verdict"]["passed"], result["verdict"]["examples"][:3]
    cats = {r["category"] for r in result["verdict"]["rows"]}
    assert set(CATEGORIES) <= cats
    paths = write_report(result, tmp_path / "report", pcap=str(tmp_path / "run.pcap"))
    for key in ("json", "html", "latency", "throughput", "outcomes"):
        assert paths[key].exists() and paths[key].stat().st_size > 0
    assert "data:image/png;base64," in paths["html"].read_text()
    assert json.loads(paths["json"].read_text())["verdict"]["passed"]
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(tmp_path / "run.pcap"), "-d", f"tcp.port=={port},diameter",
                              "-Y", "diameter.cmd.code == 324", "-T", "fields", "-e", "diameter.flags.request"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0
        lines = out.stdout.split()
        assert len(lines) == 2 * sum(1 for e in plan.events if e.expected_answer is not None)
        warn = subprocess.run(["tshark", "-r", str(tmp_path / "run.pcap"), "-d", f"tcp.port=={port},diameter",
                               "-q", "-z", "expert,warn"], capture_output=True, text=True, timeout=60)
        assert "Malformed" not in warn.stdout and "Warning" not in warn.stdout, warn.stdout


async def test_wrong_eir_answer_fails_the_run() -> None:
    scen = parse_scenario(SCEN)
    plan = scen.build()
    port = free_port()
    eir = await dict_eir(plan.lists, port, lie_black_as_white=True)
    try:
        run = await run_attach(scen, "127.0.0.1", port, plan=plan)
    finally:
        await eir.close()
    v = run.verdict
    assert not v.passed
    totals = v.totals()
    assert totals["wrongly_accepted"] > 0
    assert "black_imei" in v.table and v.table["black_imei"]["wrongly_accepted"] > 0
    assert v.table["white_imei"].get("wrongly_accepted", 0) == 0


async def test_eir_down_mid_run_counts_failures() -> None:
    scen = parse_scenario({**SCEN, "arrivals": {"rate": 1000}, "timeout": 0.5})
    plan = scen.build()
    port = free_port()
    eir = await dict_eir(plan.lists, port)

    async def kill_later() -> None:
        await asyncio.sleep(0.3)
        for link in eir.links:
            link.abort()
        await eir.close(timeout=0.2)

    task = asyncio.create_task(kill_later())
    run = await run_attach(scen, "127.0.0.1", port, plan=plan)
    await task
    t = run.verdict.totals()
    assert not run.verdict.passed
    assert t["timeout"] + t["error"] > 0 and t["ok"] > 0
    assert run.done == len(plan.events)


def test_cli_load_against_responder_and_report(tmp_path: Path) -> None:
    port = free_port()
    eir_bin = str(Path(sys.executable).with_name("eir"))
    resp = subprocess.Popen([eir_bin, "testbed", "responder", "--listen", f"127.0.0.1:{port}"])
    try:
        wait_port(port, timeout=15)
        out = subprocess.run([eir_bin, "testbed", "load", "--eir", f"127.0.0.1:{port}", "--rate", "3000",
                              "--duration", "1", "--quiet", "--report", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        result = json.loads((tmp_path / "result.json").read_text())
        assert result["answered"] == result["sent"] == 3000
        assert result["answers"] == {"white": 3000}
        assert (tmp_path / "report.html").exists()
        assert (tmp_path / "sample.pcap").exists()
        if shutil.which("tshark"):
            dec = subprocess.run(["tshark", "-r", str(tmp_path / "sample.pcap"), "-d", f"tcp.port=={port},diameter",
                                  "-Y", "diameter.cmd.code == 324"], capture_output=True, text=True, timeout=60)
            assert dec.returncode == 0 and len(dec.stdout.splitlines()) == 2 * 3  # 1 in 1000 of 3000, both ways
    finally:
        resp.send_signal(signal.SIGTERM)
        resp.wait(10)


def test_cli_load_with_scenario_flags_wrong_answers(tmp_path: Path) -> None:
    """A fixed 'white' responder is a deliberately wrong EIR: black devices must show up as wrong."""
    import yaml

    port = free_port()
    eir_bin = str(Path(sys.executable).with_name("eir"))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SCEN))
    resp = subprocess.Popen([eir_bin, "testbed", "responder", "--listen", f"127.0.0.1:{port}"])
    try:
        wait_port(port, timeout=15)
        out = subprocess.run([eir_bin, "testbed", "load", "--eir", f"127.0.0.1:{port}", "--rate", "2000",
                              "--duration", "1", "--mmes", "3", "--workers", "1", "--quiet", "--scenario",
                              str(tmp_path / "s.yaml"), "--report", str(tmp_path / "r")],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1, out.stdout
        result = json.loads((tmp_path / "r" / "result.json").read_text())
        wrong = result["wrong_by_category"]
        assert wrong["black_imei"] == {"black->white": wrong["black_imei"]["black->white"]}
        assert "white_imei" not in wrong
        assert result["answered"] == 2000 and result["config"]["mmes"] == 3
    finally:
        resp.send_signal(signal.SIGTERM)
        resp.wait(10)


async def test_responder_in_process_answers() -> None:
    from testbed.mme import SimulatedMme
    from testbed.profiles import PROFILES, Procedure
    from testbed.scenario import MmeSpec

    port = free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve_responder(ResponderConfig(port=port, status="black"), stop=stop, ready=ready))
    await ready.wait()
    mme = SimulatedMme(MmeSpec("m", "m.test", "test", PROFILES["magma"]), eir_realm="localdomain")
    await mme.connect("127.0.0.1", port)
    plan = parse_scenario(SCEN).build()
    res = await mme.run(plan.devices[0], Procedure.ATTACH, time.monotonic())
    assert res.answer is EirAnswer.BLACK and not res.outcome.accepted
    await mme.close()
    stop.set()
    assert await task == 1


@pytest.mark.parametrize("seed_lists", [True, False], ids=["seeded", "misconfigured-no-lists"])
def test_attach_against_eir_serve_memory_store(tmp_path: Path, seed_lists: bool) -> None:
    eir_bin = str(Path(sys.executable).with_name("eir"))
    scen_path = tmp_path / "s.yaml"
    import yaml

    scen_path.write_text(yaml.safe_dump({**SCEN, "population": {**SCEN["population"], "subscribers": 400}}))
    store = f"memory://{tmp_path}/reg.eir"
    if seed_lists:
        subprocess.run([eir_bin, "testbed", "seed", "--scenario", str(scen_path), "--store", store], check=True,
                       timeout=60)
    port = free_port()
    serve = subprocess.Popen([eir_bin, "serve", "--listen", f"127.0.0.1:{port}", "--store", store,
                              "--log-level", "warning"], env={**os.environ})
    try:
        wait_port(port, timeout=15)
        out = subprocess.run([eir_bin, "testbed", "attach", "--eir", f"127.0.0.1:{port}", "--scenario",
                              str(scen_path), "--quiet", "--report", str(tmp_path / "rep")],
                             capture_output=True, text=True, timeout=90)
        result = json.loads((tmp_path / "rep" / "result.json").read_text())
        if seed_lists:
            assert out.returncode == 0, out.stdout[-3000:]
            assert result["verdict"]["passed"]
        else:
            assert out.returncode == 1
            rows = {r["category"]: r for r in result["verdict"]["rows"]}
            assert rows["black_imei"]["ok"] == 0  # nothing blacklisted: every black device is a wrong outcome
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(15)
