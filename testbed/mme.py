"""A simulated MME/SGSN as far as the EIR is concerned (TS 23.401 §5.3.2.1, §5.3.3; TS 29.272 §5.3.2.1).

Each UE runs a small state table. Attach: ATTACH_REQUESTED -> (Identity Request/Response and
Security Mode Complete: the IMEISV is known) IMEISV_KNOWN -> (ME Identity Check, step 5b: ECR/ECA)
ME_CHECKED -> REGISTERED (Attach Accept) or REJECTED (Attach Reject with the profile's EMM cause,
TS 24.301 §5.5.1.2.5). TAU checks the IMEI only when the profile says so. Emergency attach may send
the check but is never refused because of it (TS 22.016, TS 23.401 §5.3.2.1).

The ECR (TS 29.272 §7.2.19) carries Session-Id, Auth-Session-State NO_STATE_MAINTAINED, Origin-*,
Destination-Realm (and Destination-Host if configured), Terminal-Information {IMEI (14 digits, or 15
with the Luhn digit), Software-Version} and User-Name (IMSI).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from eir.diameter.transport import DiameterNode, LinkClosed, NodeConfig, PeerLink, RequestTimeout, TransportKind
from protocols.diameter import Avp, Dictionary, LocalNode, Message, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.message import FLAG_PROXIABLE, FLAG_REQUEST
from protocols.diameter.peer import PeerConfig
from testbed.eca import EirAnswer, classify
from testbed.population import Device
from testbed.profiles import MmeOutcome, Procedure, Profile
from testbed.scenario import MmeSpec

__all__ = ["S13_DICTIONARY", "ProcedureResult", "SimulatedMme", "UeState", "build_ecr", "transitions"]

S13_DICTIONARY = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)


class UeState(enum.StrEnum):
    """Per-UE states of the procedures, as far as the EIR matters."""

    IDLE = "idle"
    ATTACH_REQUESTED = "attach-requested"  # Attach Request / TAU Request received
    IMEISV_KNOWN = "imeisv-known"  # Identity Response / Security Mode Complete carried the IMEISV
    ME_CHECK_PENDING = "me-check-pending"  # ECR sent, waiting for the ECA (TS 23.401 step 5b)
    REGISTERED = "registered"  # Attach/TAU Accept
    REJECTED = "rejected"  # Attach/TAU Reject with an EMM cause


def transitions(procedure: Procedure, profile: Profile) -> list[tuple[UeState, str, UeState]]:
    """The state table a procedure walks (documentation and tests; :meth:`SimulatedMme.run` follows it)."""
    rows = [(UeState.IDLE, f"{procedure.value} request", UeState.ATTACH_REQUESTED),
            (UeState.ATTACH_REQUESTED, "identity + security mode (IMEISV)", UeState.IMEISV_KNOWN)]
    if profile.sends_check(procedure):
        rows.append((UeState.IMEISV_KNOWN, "ECR sent", UeState.ME_CHECK_PENDING))
        rows.append((UeState.ME_CHECK_PENDING, "ECA allows / emergency", UeState.REGISTERED))
        if procedure is not Procedure.EMERGENCY:
            rows.append((UeState.ME_CHECK_PENDING, "ECA refuses (EMM cause)", UeState.REJECTED))
    else:
        rows.append((UeState.IMEISV_KNOWN, "no check", UeState.REGISTERED))
    return rows


@dataclass(frozen=True, slots=True)
class ProcedureResult:
    """What happened to one procedure."""

    answer: EirAnswer | None  # None: no ECR was sent
    result_code: int
    outcome: MmeOutcome
    latency: float  # seconds from the intended start to the MME decision
    final: UeState


_NO_STATE = base.AuthSessionState.NO_STATE_MAINTAINED


def build_ecr(origin: LocalNode, realm: str, session_id: str, imei: str, svn: str, imsi: str | None,
              destination_host: str | None = None) -> Message:
    """An ECR (TS 29.272 §7.2.19) in the grammar's order."""
    avps = [Avp.new(base.SESSION_ID, session_id), Avp.new(base.AUTH_SESSION_STATE, _NO_STATE), *origin.origin_avps]
    if destination_host:
        avps.append(Avp.new(base.DESTINATION_HOST, destination_host))
    avps.append(Avp.new(base.DESTINATION_REALM, realm))
    avps.append(Avp.new(s13.TERMINAL_INFORMATION, [Avp.new(s13.IMEI, imei), Avp.new(s13.SOFTWARE_VERSION, svn)]))
    if imsi:
        avps.append(Avp.new(base.USER_NAME, imsi))
    return Message(s13.ECR.code, s13.APPLICATION_ID, FLAG_REQUEST | FLAG_PROXIABLE, 0, 0, avps)


def mme_capabilities(host: str, realm: str) -> Capabilities:
    """CER contents of a simulated MME: S13 (10415/16777252) in Vendor-Specific-Application-Id."""
    return Capabilities(LocalNode(host, realm), host_ip_addresses=("127.0.0.1",), vendor_id=0,
                        product_name="eirlab-testbed", vendor_applications=((s13.VENDOR_3GPP, s13.APPLICATION_ID),),
                        supported_vendors=(s13.VENDOR_3GPP,))


#: Called with (request bytes, answer bytes or None, send time, answer time, link) for tracing.
Tracer = Callable[[bytes, bytes | None, float, float, PeerLink], None]


class SimulatedMme:
    """One MME with its own Origin-Host and one or more connections to the EIR."""

    def __init__(self, spec: MmeSpec, *, eir_realm: str, destination_host: str | None = None,
                 timeout: float = 2.0, tracer: Tracer | None = None) -> None:
        self.spec = spec
        self.profile = spec.profile
        self.origin = LocalNode(spec.origin_host, spec.realm)
        self.eir_realm = eir_realm
        self.destination_host = destination_host
        self.timeout = timeout
        self.tracer = tracer
        peer = PeerConfig(mme_capabilities(spec.origin_host, spec.realm), S13_DICTIONARY, watchdog_interval=6.0,
                          request_timeout=timeout, max_in_flight=65536)
        self.node = DiameterNode(NodeConfig(peer, max_in_flight=65536, max_pending_requests=4096))
        self.links: list[PeerLink] = []
        self._rr = itertools.count()
        self._sid = itertools.count(1)
        self._sid_prefix = f"{spec.origin_host};{int(time.time())};"
        self._target: tuple[str, int, TransportKind] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def connect(self, host: str, port: int, transport: TransportKind | None = None) -> None:
        kind = transport or TransportKind(self.spec.transport)
        self._target = (host, port, kind)
        for _ in range(self.spec.connections):
            self.links.append(await self.node.connect(host, port, kind))

    def _link(self) -> PeerLink | None:
        live = [lk for lk in self.links if not lk.closed.done()]
        if len(live) < len(self.links):
            self.links = live
            self._start_reconnect()
        if not live:
            return None
        return live[next(self._rr) % len(live)]

    def _start_reconnect(self) -> None:
        if self._target is None or (self._reconnecting is not None and not self._reconnecting.done()):
            return
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        assert self._target is not None
        host, port, kind = self._target
        delay = 0.05
        while len(self.links) < self.spec.connections:
            try:
                self.links.append(await self.node.connect(host, port, kind, timeout=2.0))
                self.reconnects += 1
            except (TimeoutError, OSError, ConnectionError):
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def run(self, device: Device, procedure: Procedure, intended: float) -> ProcedureResult:
        """Run one procedure for ``device``; ``intended`` is its scheduled start (``time.monotonic()``: uvloop's
        own clock only ticks in milliseconds, too coarse for latencies)."""
        if not self.profile.sends_check(procedure):
            return ProcedureResult(None, 0, self.profile.outcome(None, procedure), time.monotonic() - intended,
                                   UeState.REGISTERED)
        link = self._link()
        code = 0
        answer_msg: Message | None = None
        ecr = build_ecr(self.origin, self.eir_realm, f"{self._sid_prefix}{next(self._sid)}",
                        device.imei_as_sent(self.profile.imei_digits), device.svn, device.imsi,
                        self.destination_host)
        sent = time.monotonic()
        if link is None:
            answer = EirAnswer.CLOSED
        else:
            try:
                answer_msg = await link.request(ecr, self.timeout)
                answer, code = classify(answer_msg)
            except RequestTimeout:
                answer = EirAnswer.TIMEOUT
            except (LinkClosed, ConnectionError):
                answer = EirAnswer.CLOSED
        done = time.monotonic()
        if self.tracer is not None and link is not None:
            self.tracer(encode_message(ecr), None if answer_msg is None else encode_message(answer_msg), sent, done,
                        link)
        outcome = self.profile.outcome(answer, procedure)
        return ProcedureResult(answer, code, outcome, done - intended,
                               UeState.REGISTERED if outcome.accepted else UeState.REJECTED)

    async def close(self) -> None:
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        await self.node.close(timeout=2.0)
