"""The load generator against a real Diameter node over loopback: identifiers and pacing."""

from __future__ import annotations

import asyncio
import os

from eir.diameter.transport import DiameterNode, NodeConfig, PeerLink
from protocols.diameter import LocalNode, Message, encode_message
from protocols.diameter.duplicates import DuplicateCache
from protocols.diameter.peer import PeerConfig
from testbed.loadgen import LoadConfig, LoadResult, _Worker, run_load
from testbed.mme import S13_DICTIONARY, build_ecr, mme_capabilities
from testbed.responder import answer_template
from testbed.ticker import make_ticker
from tests.support.servers import free_port


async def test_back_to_back_runs_are_not_answered_from_the_duplicate_cache() -> None:
    """Each run starts its End-to-End ids afresh (RFC 6733 §3), so an EIR's duplicate detection (§5.5.4, same
    Origin-Host and End-to-End id within its window) must pass every request of a second run to the application.
    Before the fix, the second run reused ids 0..n and was answered from the cache without a decision."""
    seen: list[int] = []
    template = answer_template(LocalNode("eir.test", "localdomain"), "white")

    def handler(link: PeerLink, batch: list[Message]) -> None:
        for req in batch:
            seen.append(req.end_to_end)
            link.answer(template.render(req), req)

    caps = mme_capabilities("eir.test", "localdomain")
    node = DiameterNode(NodeConfig(PeerConfig(caps, S13_DICTIONARY, duplicates=DuplicateCache(window=60.0))), handler)
    port = free_port()
    await node.listen("127.0.0.1", port)
    try:
        cfg = LoadConfig("127.0.0.1", port, rate=2000, duration=0.5, timeout=5.0)
        first = await asyncio.to_thread(run_load, cfg)
        second = await asyncio.to_thread(run_load, cfg)
    finally:
        await node.close()
    assert first.errors == second.errors == []
    assert first.answered == second.answered == 1000
    assert len(seen) == 2000, "requests of the second run were answered as duplicates of the first"
    assert len(set(seen)) == 2000
    assert first.answers == second.answers == {"white": 1000}


async def test_a_server_that_never_answers_ends_the_run_by_itself() -> None:
    """The window fills, nothing is answered: the worker stops sending at ``duration + timeout`` and the run
    ends with every sent request counted as a timeout, not at the parent's last-resort deadline."""
    caps = mme_capabilities("eir.test", "localdomain")
    node = DiameterNode(NodeConfig(PeerConfig(caps, S13_DICTIONARY)), lambda link, batch: None)
    port = free_port()
    await node.listen("127.0.0.1", port)
    try:
        cfg = LoadConfig("127.0.0.1", port, rate=2000, duration=0.5, timeout=0.5, max_in_flight=100)
        res = await asyncio.to_thread(run_load, cfg)
    finally:
        await node.close()
    assert res.errors == []
    assert res.answered == 0
    assert res.sent == res.timeouts == 100
    assert res.elapsed < 10.0  # stops sending at 1.0 s, then waits 0.5 s; the parent would wait 61 s


def test_timeouts_count_from_when_a_request_was_sent() -> None:
    """A generator behind schedule sends requests long after they were due; the sweep must not drop them as
    timed out the moment they are sent (their answers would then be ignored and the run under-counted)."""
    worker = _Worker(LoadConfig("127.0.0.1", 1, rate=100.0, duration=1.0, timeout=1.0), 0)
    worker.pending = {1000 + i: i for i in range(20)}  # all due in the first 0.2 s
    worker.sends.extend([(0.1, 10), (5.0, 20)])  # 0-9 sent at 0.1 s, 10-19 at 5.0 s
    worker._sweep(2.5)  # sent before 0.5 s and unanswered: 0-9
    assert sorted(worker.pending.values()) == list(range(10, 20))
    assert worker.swept == 10
    worker._sweep(6.5)  # 10-19 were sent 1.5 s ago: not yet past timeout + 1 s
    assert worker.swept == 10
    worker._sweep(7.1)
    assert worker.pending == {} and worker.swept == 20


def test_sustained_rate_is_the_median_of_whole_seconds_while_sending() -> None:
    res = LoadResult(LoadConfig("127.0.0.1", 1, rate=100.0, duration=5.0), answered=3845, elapsed=20.0)
    res.sent_per_second.update({0: 500, 1: 500, 2: 500, 3: 500, 4: 500, 5: 1})
    res.answered_per_second.update({0: 10, 1: 100, 2: 120, 3: 110, 4: 500, 5: 5, 6: 3000})
    assert res.sustained == 115.0  # seconds 1-4; the ramp-up, the partial last second and the drain left out
    assert res.throughput == 3845 / 20.0
    short = LoadResult(res.config, answered=100, elapsed=2.0)
    short.sent_per_second.update({0: 50, 1: 50})
    assert short.sustained == 50.0


async def test_fd_ticker_ticks_and_closes() -> None:
    ticker = make_ticker(0.0001)
    fd = getattr(ticker, "fd", None)
    for _ in range(50):
        await asyncio.wait_for(ticker(), 5.0)
    ticker.close()
    if fd is not None:  # Linux: a timerfd, closed by close()
        try:
            os.fstat(fd)
        except OSError:
            pass
        else:
            raise AssertionError("the timerfd is still open")


def test_spliced_templates_equal_encoding_each_device() -> None:
    """Devices sharing an ECR shape get the IMEI spliced into one encoded template: the bytes must be exactly
    what the codec encodes for each device (IMEI, IMEISV, non-ASCII, malformed, with and without IMSI)."""
    plain = [(str(35000000000000 + i * 7), "01", "", "", "x") for i in range(200)]
    devices = (
        *plain, ("35-12", "02", "001010123456789", "", "malformed"), ("\u00fc" * 14, "01", "", "", "utf8"),
        ("3500000000000112", "01", "", "", "imeisv"), ("35000000000001", "01", "001010000000009", "", "imsi"),
        ("\x01" * 14, "01", "", "", "the marker itself"), ("", "01", "", "", "empty"))
    cfg = LoadConfig("127.0.0.1", 1, 100.0, 1.0, devices=devices, mmes=2)
    worker = _Worker(cfg, 0)
    got = worker.templates()
    want = []
    for k in worker.share:
        origin = mme_capabilities(cfg.origin_host(k), "epc.testbed").node
        for imei, svn, imsi, _, _ in devices:
            body = encode_message(build_ecr(origin, cfg.realm, f"{origin.host};0;" + "\0" * 10, imei, svn,
                                            imsi or None))[20:]
            cut = body.index(b"\0" * 10)
            want.append((body[:cut], body[cut + 10:]))
    assert got == want
