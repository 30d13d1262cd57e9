"""The S13 front end: ECR in, decision, ECA out (TS 29.272 §6.2.1, §7.2.19-20, §7.3.51, §7.4.3.5).

A thin adapter over :class:`eir.register.service.EquipmentChecker`: it reads IMEI, Software-Version
and User-Name (IMSI) from the ECR, asks the register, and answers with a pre-encoded ECA. Requests
arrive in batches (all ECRs of one read); cache hits are answered at once, misses wait for one
batched store round trip. What it answers:

===========================================  ==================================================
register says white / grey / black           2001 + Equipment-Status 0 / 2 / 1
unknown equipment, policy "unknown"          Experimental-Result {10415, 5422}, no Equipment-Status
unknown equipment, policy "STATUS"           (decided by the register's Policy) 2001 + that status
store unavailable, fail-closed               5012 DIAMETER_UNABLE_TO_COMPLY
store unavailable, fail-open STATUS          2001 + STATUS
Terminal-Information without IMEI and MEID   5005 MISSING_AVP, Failed-AVP {Terminal-Information{IMEI}}
IMEI not 14-16 digits, bad Software-Version   5004 INVALID_AVP_VALUE, Failed-AVP {Terminal-Information{the AVP}}
User-Name that is not an IMSI                5004, Failed-AVP {User-Name}
Destination-Realm not ours                   3003 DIAMETER_REALM_NOT_SERVED (E bit)
Destination-Host present and not us          3002 DIAMETER_UNABLE_TO_DELIVER (E bit)
too many decisions waiting for the store     3004 DIAMETER_TOO_BUSY (E bit)
===========================================  ==================================================
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from eir.diameter.transport import PeerLink
from eir.identity import ImeiError, meid_from_bytes, parse_imei
from eir.metrics import EirMetrics
from eir.register.decision import Outcome, Verdict
from eir.register.model import Status
from eir.register.service import Check, EquipmentChecker
from protocols.diameter import Avp, Dictionary, LocalNode, Message, ProtocolError, encode_message, error_answer
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.answers import AnswerTemplate
from protocols.diameter.validate import wrap_failed

from .answers import EcaTemplates

__all__ = ["FailPolicy", "S13Frontend", "S13Settings", "mask_imei"]

log = logging.getLogger("eir.s13")
_RC = base.ResultCode
#: Failed-AVP of 5005 (RFC 6733 §7.5): zero-filled, of the minimum length of an IMEI (14 digits, TS 29.272
#: §7.3.4), not the empty UTF8String of the bare type, which Wireshark flags ("Data is empty", a warning).
_MISSING_IMEI = Avp(s13.IMEI.code, s13.IMEI.default_flags, s13.VENDOR_3GPP, bytes(14))
_UNKNOWN = Verdict(Outcome.UNKNOWN, None)
_SUCCESS = int(_RC.DIAMETER_SUCCESS)
_UNABLE = int(_RC.DIAMETER_UNABLE_TO_COMPLY)
_TOO_BUSY = int(_RC.DIAMETER_TOO_BUSY)
_EQUIPMENT_UNKNOWN = int(s13.ExperimentalResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN)
# The codes _parse compares, read once from the spec tables (one global load each, per AVP of every ECR).
_V3GPP = s13.VENDOR_3GPP
_TERMINAL_INFORMATION = s13.TERMINAL_INFORMATION.code
_IMEI = s13.IMEI.code
_SOFTWARE_VERSION = s13.SOFTWARE_VERSION.code
_MEID = s13.MEID_3GPP2.code
_USER_NAME = base.USER_NAME.code
_ORIGIN_HOST = base.ORIGIN_HOST.code
_DESTINATION_REALM = base.DESTINATION_REALM.code
_DESTINATION_HOST = base.DESTINATION_HOST.code


@dataclass(frozen=True, slots=True)
class FailPolicy:
    """What to answer when the register cannot be reached: ``status`` None is fail-closed (5012)."""

    status: Status | None = None

    @property
    def closed(self) -> bool:
        return self.status is None


@dataclass(frozen=True, slots=True)
class S13Settings:
    """Front-end behaviour. ``realms`` empty accepts any Destination-Realm."""

    realms: frozenset[str] = frozenset()
    fail: FailPolicy = field(default_factory=FailPolicy)
    max_pending: int = 20_000
    log_requests: bool = False
    #: Store lookups in flight at once, and the most misses one lookup carries.
    max_lookups: int = 2
    batch_max: int = 1000


def mask_imei(imei: str) -> str:
    """TAC kept, serial number hidden: logs must not carry subscriber equipment identities."""
    return imei[:8] + "*" * max(0, len(imei) - 8)


def _is_imsi(text: str) -> bool:
    # TS 23.003 §2.2: MCC(3) MNC(2-3) MSIN, at most 15 digits in all.
    return 6 <= len(text) <= 15 and text.isdigit()


def _send_all(answers: list[tuple[PeerLink, bytes, Message]]) -> None:
    """Answers given after a store round trip, written at once per connection (``PeerLink.answer_all``)."""
    by_link: dict[PeerLink, list[tuple[bytes, Message]]] = {}
    for link, answer, request in answers:
        by_link.setdefault(link, []).append((answer, request))
    for link, pairs in by_link.items():
        link.answer_all(pairs)


class S13Frontend:
    """The request handler of the EIR's Diameter node for application 16777252."""

    def __init__(self, checker: EquipmentChecker, node: LocalNode, dictionary: Dictionary,
                 settings: S13Settings | None = None, metrics: EirMetrics | None = None) -> None:
        self.checker = checker
        self.node = node
        self.dictionary = dictionary
        self.settings = settings or S13Settings()
        self.metrics = metrics or EirMetrics()
        self.templates = EcaTemplates(node)
        self.pending = 0
        self._queue: list[tuple[PeerLink, Message, Check, float]] = []
        self._lookups: set[asyncio.Task[None]] = set()
        self._draining = 0
        self._counts = self.metrics.counts
        #: Per verdict (a handful: outcome x status), the answer template and the result code it counts.
        self._answers: dict[Verdict, tuple[AnswerTemplate, int]] = {}
        self._host = node.host.lower().encode()
        self._realms = frozenset(r.lower().encode() for r in self.settings.realms)

    # ------------------------------------------------------------------ the handler
    def __call__(self, link: PeerLink, requests: list[Message]) -> None:
        misses: list[tuple[Message, Check]] = []
        hits = 0
        verdict_cached = self.checker.verdict_cached
        for req in requests:
            parsed = self._parse(req, link)
            if isinstance(parsed, bytes):
                link.answer(parsed, req)
                continue
            verdict = verdict_cached(*parsed)
            if verdict is not None:
                hits += 1
                link.answer(self._answer(req, verdict), req)
            else:
                misses.append((req, parsed))
        counts = self._counts
        counts.requests["s13"] += len(requests)
        counts.hits += hits
        counts.misses += len(misses)
        if hits:
            self.metrics.latency.observe_n(0.0, hits)
        if misses and self.pending + len(misses) > self.settings.max_pending:
            self._result(_TOO_BUSY, len(misses))
            for req, _ in misses:
                link.answer(self.templates.too_busy.render(req), req)
            misses = []
        if not misses:
            return
        self.pending += len(misses)
        now = time.perf_counter()
        self._queue.extend((link, req, c, now) for req, c in misses)
        if self._draining < self.settings.max_lookups:
            # Counted by the coroutine itself, not by the task's done callback: a drain that has just seen
            # an empty queue and returned is no longer draining, even before its callbacks have run
            # (counting tasks stranded a queue when a read arrived in between and reading was paused).
            self._draining += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    async def _drain(self) -> None:
        """Decide queued misses, as many per store round trip as have queued up (at most ``batch_max``).

        Misses of many reads and many peers share one lookup: while a lookup is in flight, the next one's
        batch grows by itself, so batches get larger exactly when the load is high (no added delay when
        it is low). At most ``max_lookups`` lookups are in flight at once.
        """
        try:
            while self._queue:
                batch = self._queue[: self.settings.batch_max]
                del self._queue[: self.settings.batch_max]
                await self._resolve(batch)
        finally:
            self._draining -= 1

    def _fail(self, batch: list[tuple[PeerLink, Message, Check, float]]) -> None:
        self._result(_UNABLE, len(batch))
        render = self.templates.unable_to_comply.render
        _send_all([(link, render(req), req) for link, req, _, _ in batch])

    def _result(self, code: int, n: int = 1) -> None:
        results = self._counts.results
        results[code] = results.get(code, 0) + n

    async def _resolve(self, batch: list[tuple[PeerLink, Message, Check, float]]) -> None:
        try:
            self._counts.round_trips += 1
            verdicts = await self.checker.verdicts([c for _, _, c, _ in batch])
        except Exception:  # e.g. a corrupt stored value: this batch gets 5012, the queue goes on
            log.exception("S13 decision batch of %d failed; answered 5012", len(batch))
            self._fail(batch)
            return
        finally:
            self.pending -= len(batch)
        up = 1
        now = time.perf_counter()
        observe = self.metrics.latency.observe_n
        answers: list[tuple[PeerLink, bytes, Message]] = []
        for (link, req, _, queued), verdict in zip(batch, verdicts, strict=True):
            if verdict.outcome is Outcome.STORE_UNAVAILABLE:
                up = 0
            answers.append((link, self._answer(req, verdict), req))
            observe(now - queued)
        _send_all(answers)
        self.metrics.store_up.set(up)

    # ------------------------------------------------------------------ ECR -> CheckRequest
    def _parse(self, req: Message, link: PeerLink) -> Check | bytes:
        """The register request, or the encoded error answer for a malformed or misrouted ECR."""
        imei_avp: Avp | None = None
        meid_avp: Avp | None = None
        sv_avp: Avp | None = None
        user: Avp | None = None
        origin = ""
        ti: Avp | None = None
        for avp in req.avps:
            code = avp.code
            if avp.vendor:
                if code == _TERMINAL_INFORMATION and avp.vendor == _V3GPP:
                    ti = avp
                    for child in avp.children():
                        if child.vendor != _V3GPP:
                            continue
                        if child.code == _IMEI:
                            imei_avp = child
                        elif child.code == _SOFTWARE_VERSION:
                            sv_avp = child
                        elif child.code == _MEID:
                            meid_avp = child
            elif code == _USER_NAME:
                user = avp
            elif code == _ORIGIN_HOST:
                origin = avp.data.decode("ascii")
            elif code == _DESTINATION_REALM:
                if self._realms and avp.data.lower() not in self._realms:
                    return self._error(req, _RC.DIAMETER_REALM_NOT_SERVED,
                                       f"realm {avp.data.decode('ascii', 'replace')} is not served here")
            elif code == _DESTINATION_HOST and avp.data.lower() != self._host:
                return self._error(req, _RC.DIAMETER_UNABLE_TO_DELIVER,
                                   f"Destination-Host {avp.data.decode('ascii', 'replace')} is not this EIR")
        assert ti is not None  # {Terminal-Information} is required: the validator checked it
        svn: str | None = None
        if sv_avp is not None:
            svn = sv_avp.data.decode("utf-8", "replace")
            if len(svn) != 2 or not svn.isdigit():
                return self._error(req, _RC.DIAMETER_INVALID_AVP_VALUE,
                                   f"Software-Version {svn!r} is not 2 digits (TS 23.003 §6.2.2)",
                                   wrap_failed((ti,), sv_avp))
        imsi: str | None = None
        if user is not None:
            imsi = user.data.decode("utf-8", "replace")
            if not _is_imsi(imsi):
                return self._error(req, _RC.DIAMETER_INVALID_AVP_VALUE,
                                   f"User-Name {imsi!r} is not an IMSI (TS 23.003 §2.2)", user)
        if imei_avp is not None:
            data = imei_avp.data
            if 14 <= len(data) <= 16 and data.isdigit():  # bytes.isdigit: ASCII digits only
                # The common form, exactly as parse_imei reads it: key, spare digit or the SVN of an IMEISV.
                key = data[:14].decode("ascii")
                if svn is None and len(data) == 16:
                    svn = data[14:].decode("ascii")
            else:
                text = data.decode("utf-8", "replace")
                try:
                    imei = parse_imei(text)
                except ImeiError as e:
                    return self._error(req, _RC.DIAMETER_INVALID_AVP_VALUE, f"IMEI: {e.reason}",
                                       wrap_failed((ti,), imei_avp))
                key = imei.key
                svn = imei.svn if svn is None else svn
        elif meid_avp is not None:
            try:
                mapped = meid_from_bytes(meid_avp.data).as_imei()
            except ImeiError as e:
                return self._error(req, _RC.DIAMETER_INVALID_AVP_VALUE, f"3GPP2-MEID: {e.reason}",
                                   wrap_failed((ti,), meid_avp))
            if mapped is None:  # not in the IMEI space: no list can hold it
                return self._answer(req, _UNKNOWN)
            key = mapped.key
            svn = mapped.svn if svn is None else svn
        else:
            return self._error(req, _RC.DIAMETER_MISSING_AVP, "Terminal-Information carries no IMEI",
                               wrap_failed((ti,), _MISSING_IMEI))
        if self.settings.log_requests:
            log.info("ecr peer=%s imei=%s svn=%s", origin or link.peername, mask_imei(key), svn)
        return key, imsi, svn, origin or None

    # ------------------------------------------------------------------ decision -> ECA bytes
    def _answer(self, req: Message, verdict: Verdict) -> bytes:
        plan = self._answers.get(verdict)
        if plan is None:
            plan = self._answers[verdict] = self._answer_plan(verdict)
        template, code = plan
        counts = self._counts
        counts.outcomes[verdict.outcome] += 1
        results = counts.results
        results[code] = results.get(code, 0) + 1
        return template.render(req)

    def _answer_plan(self, verdict: Verdict) -> tuple[AnswerTemplate, int]:
        """The ECA template and Result-Code (or Experimental-Result-Code) answering ``verdict``."""
        status = verdict.status
        if verdict.outcome is Outcome.STORE_UNAVAILABLE:
            status = self.settings.fail.status
            if status is None:
                return self.templates.unable_to_comply, _UNABLE
        if status is None:
            return self.templates.unknown, _EQUIPMENT_UNKNOWN
        return self.templates.by_status[int(status)], _SUCCESS

    def _error(self, req: Message, code: int, text: str, failed: Avp | None = None) -> bytes:
        self._result(int(code))
        err = ProtocolError(code, text, failed_avp=failed, header=req.header)
        return encode_message(error_answer(err, self.node, self.dictionary, req))
