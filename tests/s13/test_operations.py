"""Operations of a running ``eir serve``: peer allowlist, overload (3004), graceful shutdown (DPR),
list changes picked up while running. Each test starts its own ``eir serve`` subprocess.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from eir.diameter.transport import DiameterNode, NodeConfig
from protocols.diameter import LocalNode, Message, decode_message, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.message import FLAG_REQUEST
from protocols.diameter.peer import PeerConfig
from tests.s13.conftest import (
    DICT,
    EIR_HOST,
    EIR_REALM,
    S13,
    EirProcess,
    S13Client,
    assert_eca_shape,
    eir_cli,
    held_lookups,
    poll_until,
    recv_message,
    redis_cli,
    unique_store_url,
    verdict,
)
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.redis]

WHITE = "35209900176148"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "eir.yaml"
    path.write_text(text)
    return path


def cer_bytes(origin_host: str) -> bytes:
    caps = Capabilities(LocalNode(origin_host, EIR_REALM), host_ip_addresses=("127.0.0.1",),
                        vendor_applications=((s13.VENDOR_3GPP, S13),), supported_vendors=(s13.VENDOR_3GPP,))
    return encode_message(Message(257, 0, FLAG_REQUEST, 0x1234, 0x5678, list(caps.avps())))


# ---------------------------------------------------------------------------------------- allowlist
async def test_allowlist_refuses_other_origin_hosts_with_3010_and_closes(
        redis_server: RedisServer, eir_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, 'diameter:\n  allowed_peers:\n    hosts: ["mme-*.test"]\n')
    eir: EirProcess = eir_factory(unique_store_url(redis_server), config=config)

    # An allowed MME: CER/CEA 2001 and ECAs as usual.
    mme = await S13Client("mme-1.test").connect(eir.port)
    try:
        assert await mme.verdict(WHITE) == "unknown"
    finally:
        await mme.close()

    # A disallowed Origin-Host over a raw socket: CEA 3010 DIAMETER_UNKNOWN_PEER, then the EIR closes.
    def raw() -> tuple[Message, bytes]:
        with socket.create_connection(("127.0.0.1", eir.port), 5) as sock:
            sock.settimeout(5)
            sock.sendall(cer_bytes("intruder.test"))
            cea = decode_message(recv_message(sock))
            return cea, sock.recv(1)  # b"": closed by the EIR (a timeout would raise)

    cea, after = await asyncio.to_thread(raw)
    assert cea.command == 257 and not cea.is_request and cea.hop_by_hop == 0x1234 and cea.end_to_end == 0x5678
    assert cea.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_UNKNOWN_PEER
    # Not asserted: the E bit. RFC 6733 §7.1.3 makes 3010 a protocol error, which §7.2 sends with the E bit;
    # protocols/diameter/peer.py sends this CEA without it (reported, outside this test's files).
    assert cea.get(base.ORIGIN_HOST) == EIR_HOST
    assert after == b""

    # Our own stack reports the refusal the same way.
    node = DiameterNode(NodeConfig(PeerConfig(Capabilities(
        LocalNode("mme.other.test", EIR_REALM), vendor_applications=((s13.VENDOR_3GPP, S13),)), DICT)))
    try:
        with pytest.raises(ConnectionRefusedError, match="3010"):
            await node.connect("127.0.0.1", eir.port, timeout=5)
    finally:
        await node.close(timeout=1)
    assert eir.proc.poll() is None  # still serving


# ---------------------------------------------------------------------------------------- overload
async def test_overload_gives_3004_and_answers_every_request_once(
        own_redis: RedisServer, eir_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """policy.max_pending 4 (from a config file) and a Redis that holds every lookup (CLIENT PAUSE WRITE
    blocks EVALSHA; reads such as the change feed go on): at most 4 decisions can wait, so of 1 + 12
    requests for never-seen IMEIs at least 9 are refused at once with 3004 (E bit); the others are
    answered once Redis resumes. Ordered by observation, not by timing."""
    max_pending, burst = 4, 12
    config = write_config(tmp_path, f"policy:\n  max_pending: {max_pending}\n")
    url = unique_store_url(own_redis, timeout=30)  # the held lookups must not time out
    eir: EirProcess = eir_factory(url, config=config)
    mme = await S13Client().connect(eir.port)
    assert mme.link is not None
    tasks: list[asyncio.Task[Message]] = []
    try:
        assert await mme.verdict("88888888000000") == "unknown"  # rules loaded, store reachable
        redis_cli(own_redis, "CLIENT", "PAUSE", "20000", "WRITE")
        reqs = [mme.ecr(f"8888888800{i:04d}") for i in range(1, burst + 2)]
        tasks.append(asyncio.create_task(mme.send(reqs[0], timeout=25)))

        deadline = time.monotonic() + 10
        while await asyncio.to_thread(held_lookups, own_redis) < 1:  # the first decision waits in Redis
            assert time.monotonic() < deadline, "the first lookup never reached Redis"
            await asyncio.sleep(0.02)
        tasks += [asyncio.create_task(mme.send(r, timeout=25)) for r in reqs[1:]]

        must_refuse = len(reqs) - max_pending
        deadline = time.monotonic() + 10
        while sum(t.done() for t in tasks) < must_refuse:
            assert time.monotonic() < deadline, f"only {sum(t.done() for t in tasks)} answers while Redis is held"
            await asyncio.sleep(0.01)
        early = [t.result() for t in tasks if t.done()]
        assert all(a.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_TOO_BUSY for a in early)
        assert not tasks[0].done()  # the first one is still waiting for the store
    finally:
        redis_cli(own_redis, "CLIENT", "UNPAUSE")
    answers = await asyncio.wait_for(asyncio.gather(*tasks), 25)
    await mme.close()

    # Exactly one answer per request (matched by Hop-by-Hop / End-to-End / Session-Id).
    assert len(answers) == len(reqs) and mme.sent == mme.answered == len(reqs) + 1
    assert len({a.get(base.SESSION_ID) for a in answers}) == len(reqs)
    busy = 0
    for req, ans in zip(reqs, answers, strict=True):
        assert_eca_shape(ans, req)
        if ans.get(base.RESULT_CODE) == base.ResultCode.DIAMETER_TOO_BUSY:
            busy += 1
            assert ans.is_error and ans.get(s13.EQUIPMENT_STATUS) is None
        else:
            assert verdict(ans) == "unknown"
    assert busy >= must_refuse
    assert verdict(answers[0]) == "unknown"  # answered after the pause
    assert eir.stop() == 0


# ---------------------------------------------------------------------------------------- shutdown
async def test_sigterm_sends_dpr_to_our_client_and_exits_0(
        redis_server: RedisServer, eir_factory, peer_events: list[str]) -> None:  # type: ignore[no-untyped-def]
    eir: EirProcess = eir_factory(unique_store_url(redis_server))
    mme = await S13Client().connect(eir.port)
    try:
        assert await mme.verdict(WHITE) == "unknown"
        assert mme.link is not None
        rc = await eir.astop()  # SIGTERM by pid; our loop stays free to answer the DPR
        assert rc == 0, eir.fail(f"exit status {rc}")
        assert await asyncio.wait_for(asyncio.shield(mme.link.closed), 5) == "peer sent DPR"
    finally:
        await mme.close()
    dpr = [e for e in peer_events if "peer_event=dpr-received" in e]
    assert len(dpr) == 1 and dpr[0].endswith("cause=0"), peer_events  # DisconnectRequested(REBOOTING)
    log = eir.log()
    assert "shutting down: DPR to 1 peer(s)" in log and "reason=DPA received" in log, eir.fail("no DPR/DPA")
    assert "Traceback" not in log


async def test_sigterm_answers_requests_in_flight_before_the_dpr(
        own_redis: RedisServer, eir_factory) -> None:  # type: ignore[no-untyped-def]
    """A decision still waiting for the store when SIGTERM arrives is answered before the DPR: the peer
    closes the connection once it has answered our DPR, so an answer sent after it would be lost."""
    eir: EirProcess = eir_factory(unique_store_url(own_redis, timeout=30))
    mme = await S13Client().connect(eir.port)
    assert mme.link is not None
    try:
        assert await mme.verdict("88888888000000") == "unknown"
        redis_cli(own_redis, "CLIENT", "PAUSE", "20000", "WRITE")
        req = mme.ecr("88888888000001")
        task = asyncio.create_task(mme.send(req, timeout=25))
        deadline = time.monotonic() + 10
        while await asyncio.to_thread(held_lookups, own_redis) < 1:
            assert time.monotonic() < deadline, "the lookup never reached Redis"
            await asyncio.sleep(0.02)
        eir.terminate()  # SIGTERM by pid while the decision waits in Redis
        while "shutting down" not in eir.log():
            assert time.monotonic() < deadline + 5 and eir.proc.poll() is None, eir.fail("no shutdown")
            await asyncio.sleep(0.02)
    finally:
        redis_cli(own_redis, "CLIENT", "UNPAUSE")
    ans = await asyncio.wait_for(task, 25)  # LinkClosed here: the answer was dropped by the shutdown
    assert_eca_shape(ans, req)
    assert verdict(ans) == "unknown"
    assert await asyncio.wait_for(asyncio.shield(mme.link.closed), 10) == "peer sent DPR"
    await mme.close()
    assert await asyncio.to_thread(eir.wait) == 0


async def test_sigterm_sends_dpr_to_freediameterd(
        redis_server: RedisServer, eir_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fdmod = pytest.importorskip("tests.support.freediameter")
    fdmod.require_freediameterd()
    eir: EirProcess = eir_factory(unique_store_url(redis_server))
    async with fdmod.freediameter(tmp_path / "fd", "fd.test", EIR_REALM,
                                  connect_peers=[(EIR_HOST, "127.0.0.1", eir.port)]) as fd:
        await fd.await_open(EIR_HOST)
        mark = len(fd.log())
        rc = await eir.astop()
        assert rc == 0, eir.fail(f"exit status {rc}")
        dpr = await fd.await_message("RCV", EIR_HOST, "Disconnect-Peer-Request", timeout=5)
        assert "REBOOTING" in (dpr.avp("Disconnect-Cause") or ""), dpr.lines
        assert dpr.avp("Origin-Host") == f'"{EIR_HOST}"'
        dpa = await fd.await_message("SND", EIR_HOST, "Disconnect-Peer-Answer", timeout=5)
        assert "2001" in (dpa.avp("Result-Code") or "") and dpa.hop_by_hop == dpr.hop_by_hop
        await fd.await_log(rf"'STATE_OPEN'\s+-> 'STATE_CLOSING'\s+'{EIR_HOST}'", timeout=5, start=mark)
    assert "reason=DPA received" in eir.log(), eir.fail("the EIR did not get fd's DPA")


# ---------------------------------------------------------------------------------------- list changes
async def _cli(*args: str, store: str) -> None:
    await asyncio.to_thread(eir_cli, *args, store=store)


async def _changes_to(mme: S13Client, imei: str, want: str, deadline: float = 3.0) -> float:
    """Poll (new ECRs) until the verdict is ``want``; return the seconds it took."""
    start = time.monotonic()
    seen = []
    while True:
        got = await mme.verdict(imei)
        if got == want:
            return time.monotonic() - start
        seen.append(got)
        assert time.monotonic() - start < deadline, f"{imei} still {seen[-5:]} after {deadline} s, want {want}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("replica", [False, True], ids=["cache", "replica"])
async def test_list_changes_reach_the_running_server(redis_server: RedisServer, eir_factory,  # type: ignore[no-untyped-def]
                                                     replica: bool) -> None:
    url = unique_store_url(redis_server)
    eir_cli("list", "add", WHITE, "--status", "white", store=url)
    eir: EirProcess = eir_factory(url, *(["--replica-max-entries", "1000"] if replica else []))
    if replica:  # the changes below then reach a replica of the whole register
        await poll_until(lambda: asyncio.sleep(0, "IMEI-level entries loaded" in eir.log()), 10, "replica loaded")
        assert "1 IMEI-level entries loaded" in eir.log()
    mme = await S13Client().connect(eir.port)
    took: dict[str, float] = {}
    try:
        assert await mme.verdict(WHITE) == "white"
        assert await mme.verdict(WHITE) == "white"  # now cached: the change must invalidate it
        await _cli("list", "add", WHITE, "--status", "black", store=url)
        took["imei white->black"] = await _changes_to(mme, WHITE, "black")
        await _cli("list", "remove", WHITE, store=url)
        took["imei removed"] = await _changes_to(mme, WHITE, "unknown")
        # Rules (TAC) follow the change feed too.
        assert await mme.verdict("12121212000001") == "unknown"
        await _cli("list", "add", "--tac", "12121212", "--status", "grey", store=url)
        took["tac added"] = await _changes_to(mme, "12121212000001", "grey")
        await _cli("list", "add", "--range", "12121212000000", "12121212000009", "--status", "black", store=url)
        took["range added"] = await _changes_to(mme, "12121212000001", "black")
    finally:
        await mme.close()
    print("list change -> ECA (s after the CLI returned):", {k: round(v, 3) for k, v in took.items()})
    assert eir.stop() == 0
