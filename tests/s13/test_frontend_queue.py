"""The S13 front end's miss queue, with a fake register (unit tests of our own scheduling logic).

Every queued miss must be answered exactly once: however reads and finishing lookups interleave, and
when a lookup fails with an unexpected error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from eir.diameter.transport import PeerLink
from eir.register.decision import Outcome, Verdict
from eir.register.model import EntryError, Status
from eir.register.service import Check, EquipmentChecker
from eir.s13.frontend import S13Frontend, S13Settings
from eir.server import S13_DICTIONARY
from protocols.diameter import LocalNode, Message, decode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from testbed.mme import build_ecr

EIR = LocalNode("eir.test", "localdomain")
MME = LocalNode("mme.test", "localdomain")


class FakeLink:
    def __init__(self) -> None:
        self.answers: list[Message] = []
        self.peername = "fake"

    def answer(self, answer: bytes | Message, request: Message) -> None:
        assert isinstance(answer, bytes)
        self.answers.append(decode_message(answer))

    def answer_all(self, answers: list[tuple[bytes | Message, Message]]) -> None:
        for answer, request in answers:
            self.answer(answer, request)


class FakeChecker:
    """Never a cache hit; ``verdicts`` runs ``hook`` (once) just before it returns."""

    def __init__(self) -> None:
        self.hook: Any = None
        self.fail_with: Exception | None = None
        self.calls = 0

    def verdict_cached(self, key: str, imsi: str | None = None, svn: str | None = None,
                       requester: str | None = None) -> Verdict | None:
        return None

    async def verdicts(self, requests: Sequence[Check]) -> list[Verdict]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return [Verdict(Outcome.BLACK, Status.BLACK) for _ in requests]


def ecr(i: int) -> Message:
    return build_ecr(MME, "localdomain", f"mme.test;{i}", f"3500000000{i:04d}", "01", None)


def frontend(checker: FakeChecker, max_lookups: int = 1) -> S13Frontend:
    return S13Frontend(cast(EquipmentChecker, checker), EIR, S13_DICTIONARY, S13Settings(max_lookups=max_lookups))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_read_arriving_as_the_last_lookup_finishes_is_still_decided() -> None:
    checker = FakeChecker()
    fe = frontend(checker)
    link = FakeLink()
    loop = asyncio.get_running_loop()
    # The second read is handled after the draining task has seen an empty queue and returned, but before
    # its done callbacks run (both are call_soon callbacks, in this order).
    checker.hook = lambda: loop.call_soon(fe, cast(PeerLink, link), [ecr(2)])
    fe(cast(PeerLink, link), [ecr(1)])
    await settle()
    assert len(link.answers) == 2, "a miss was stranded in the queue"
    assert all(a.get(s13.EQUIPMENT_STATUS) == Status.BLACK for a in link.answers)
    assert fe.pending == 0 and not fe._queue


async def test_an_unexpected_lookup_error_answers_5012_and_the_queue_goes_on() -> None:
    checker = FakeChecker()
    checker.fail_with = EntryError("corrupt stored value for IMEI 35000000000000")
    fe = frontend(checker)
    link = FakeLink()
    fe(cast(PeerLink, link), [ecr(1), ecr(2)])
    await settle()
    assert [a.get(base.RESULT_CODE) for a in link.answers] == [base.ResultCode.DIAMETER_UNABLE_TO_COMPLY] * 2
    checker.fail_with = None
    fe(cast(PeerLink, link), [ecr(3)])
    await settle()
    assert link.answers[-1].get(s13.EQUIPMENT_STATUS) == Status.BLACK
    assert fe.pending == 0 and fe._draining == 0


async def test_many_reads_with_lookups_in_flight_are_each_answered_once() -> None:
    checker = FakeChecker()
    fe = frontend(checker, max_lookups=2)
    link = FakeLink()
    n = 0
    for burst in range(30):
        fe(cast(PeerLink, link), [ecr(n + j) for j in range(burst % 7 + 1)])
        n += burst % 7 + 1
        for _ in range(burst % 3):
            await asyncio.sleep(0)
    await settle()
    sessions = [a.get(base.SESSION_ID) for a in link.answers]
    assert sorted(sessions) == sorted(f"mme.test;{i}" for i in range(n))
    assert fe.pending == 0 and fe._draining == 0
