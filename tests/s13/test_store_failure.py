"""The store goes away mid-run and comes back: fail-closed (5012) and fail-open (2001 + status).

A function-scoped redis-server is stopped while ``eir serve`` is answering a steady stream of ECRs,
then restarted (empty: persistence is off) and re-seeded with ``eir list add``. The EIR must answer
every request throughout (requests sent == answers received, none timed out), apply its fail policy
while Redis is down, and go back to real answers by itself once Redis is back (it reconnects; no
restart of the EIR, no operator action but the re-seeding).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter

import pytest

from protocols.diameter import base_rfc6733 as base
from tests.s13.conftest import (
    EirProcess,
    S13Client,
    eir_cli,
    restart_redis_quickly,
    stop_redis_quickly,
    unique_store_url,
)
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.redis]

BLACK = "49015420323751"
_fresh = itertools.count(10_000_000)


def fresh_imei() -> str:
    """An IMEI never asked before: never in the EIR's cache, so the store must be asked."""
    return f"777777{next(_fresh):08d}"


class Traffic:
    """A steady stream of ECRs (the listed IMEI and never-seen ones) on its own task, counted."""

    def __init__(self, mme: S13Client) -> None:
        self.mme = mme
        self.sent = 0
        self.verdicts: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            imei = BLACK if n % 2 else fresh_imei()
            self.sent += 1
            try:
                self.verdicts[await self.mme.verdict(imei)] += 1
            except Exception as e:  # a timeout or a closed link: a request left unanswered
                self.errors.append(e)
            await asyncio.sleep(0.005)

    async def saw(self, want: str, more_than: int, deadline: float = 10.0) -> int:
        """Wait until the stream has had more than ``more_than`` ``want`` answers; return the count."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while self.verdicts[want] <= more_than:
            if loop.time() > end or self._task.done():
                raise AssertionError(f"the stream saw no new {want!r} within {deadline} s: {self.verdicts}")
            await asyncio.sleep(0.01)
        return self.verdicts[want]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(self._task, 15)


async def until(mme: S13Client, imei_fn, want: str, deadline: float) -> int:  # type: ignore[no-untyped-def]
    """Ask (a new ECR each time) until the verdict is ``want``; return how many tries it took."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    seen: list[str] = []
    for tries in itertools.count(1):
        got = await mme.verdict(imei_fn())
        if got == want:
            return tries
        seen.append(got)
        if loop.time() > end:
            raise AssertionError(f"no {want!r} within {deadline} s; got {seen[-10:]}")
        await asyncio.sleep(0.02)
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("fail", "outage", "replica"), [
    ("closed", "5012", False), ("open-white", "white", False), ("open-grey", "grey", False), ("closed", "5012", True),
], ids=["closed", "open-white", "open-grey", "closed-replica"])
async def test_redis_stopped_and_restarted_mid_run(own_redis: RedisServer, eir_factory, fail: str,  # type: ignore[no-untyped-def]
                                                    outage: str, replica: bool) -> None:
    url = unique_store_url(own_redis, timeout=1)
    eir_cli("list", "add", BLACK, "--status", "black", store=url)
    eir: EirProcess = eir_factory(url, "--fail", fail, *(["--replica-max-entries", "1000"] if replica else []))
    mme = await S13Client().connect(eir.port)
    traffic: Traffic | None = None
    try:
        assert await mme.verdict(BLACK) == "black"
        assert await mme.verdict(fresh_imei()) == "unknown"
        traffic = Traffic(mme)
        await traffic.saw("black", 2)

        await asyncio.to_thread(stop_redis_quickly, own_redis)  # ---------------------- Redis down
        # A never-seen IMEI needs the store: the fail policy answers at once.
        await until(mme, fresh_imei, outage, 5)
        ans = await mme.check(fresh_imei())
        if fail == "closed":
            assert ans.get(base.RESULT_CODE) == 5012
            assert not ans.is_error and "unavailable" in ans.get(base.ERROR_MESSAGE)
        # The listed IMEI too, once the change feed has noticed the loss and dropped the cache.
        await until(mme, lambda: BLACK, outage, 5)
        await traffic.saw(outage, 5)  # the steady stream runs through the outage

        await asyncio.to_thread(restart_redis_quickly, own_redis)  # ------------------ Redis back, empty
        blacks = traffic.verdicts["black"]
        await asyncio.to_thread(eir_cli, "list", "add", BLACK, "--status", "black", store=url)  # re-seed
        await until(mme, lambda: BLACK, "black", 10)  # the EIR reconnected by itself
        await until(mme, fresh_imei, "unknown", 10)
        assert await mme.verdict(BLACK) == "black"
        await traffic.saw("black", blacks + 2)  # and after it
    finally:
        if traffic is not None:
            await traffic.stop()
        with contextlib.suppress(Exception):
            await mme.close()
    assert traffic is not None
    # No request went unanswered: every ECR of the steady stream got exactly one ECA.
    assert not traffic.errors, traffic.errors[:3]
    assert mme.sent == mme.answered and sum(traffic.verdicts.values()) == traffic.sent
    assert set(traffic.verdicts) <= {"black", "unknown", outage}, traffic.verdicts
    assert traffic.verdicts[outage] > 0 and traffic.verdicts["black"] > 0, traffic.verdicts
    assert eir.stop() == 0
    assert "Traceback" not in eir.log(), eir.fail("a traceback in the log")
