"""One Diameter peer connection, sans-I/O (RFC 6733 §5, RFC 3539 watchdog).

Feed it bytes with :meth:`PeerConnection.receive_data`, the clock with :meth:`handle_timer`, and
your own requests and answers with :meth:`send_request` / :meth:`send_answer`; it returns
:mod:`events` and queues bytes for :meth:`data_to_send`. It never reads a clock or a socket: every
method that depends on time takes ``now`` (seconds, any monotonic origin), and :meth:`next_deadline`
says when it next needs :meth:`handle_timer`.

The same class serves both roles: the EIR accepts connections (``Role.RESPONDER``: waits for a CER),
the testbed's MME connects (``Role.INITIATOR``: sends the CER on :meth:`start`).
"""

from __future__ import annotations

import enum
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from . import base_rfc6733 as base
from .answers import error_answer, make_answer
from .capabilities import Capabilities, common_applications, peer_applications, peer_info_avps
from .dictionary import Dictionary
from .duplicates import DuplicateCache
from .errors import DiameterError, FramingError, ProtocolError, StateError
from .events import (
    AnswerDiscarded,
    AnswerReceived,
    CapabilitiesRejected,
    ConnectionClosed,
    ConnectionOpened,
    DisconnectRequested,
    DuplicateRequest,
    Event,
    PeerInfo,
    RequestReceived,
    RequestRejected,
    RequestTimedOut,
    WatchdogChanged,
)
from .framer import Framer
from .message import FLAG_REQUEST, Avp, Message, decode_header, decode_message, encode_message
from .peer_state import TRANSITIONS, WATCHDOG, Input, State, Watchdog, WatchdogInput
from .validate import Validator

__all__ = ["PeerConfig", "PeerConnection", "Role", "elect"]

_CER, _DWR, _DPR = base.CER.code, base.DWR.code, base.DPR.code
_BASE_COMMANDS = frozenset((_CER, _DWR, _DPR))
_SUCCESS = base.ResultCode.DIAMETER_SUCCESS
_RC = base.ResultCode


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


def elect(local_host: str, peer_host: str) -> bool:
    """§5.6.4 election: True when we win (our Origin-Host is higher, compared as lower-cased octets)."""
    return local_host.lower().encode() > peer_host.lower().encode()


#: Decides whether a peer that passed the capabilities exchange may connect: None admits it, a
#: Result-Code refuses it (3010 DIAMETER_UNKNOWN_PEER for an allowlist, 4003 ELECTION_LOST).
Admission = Callable[[PeerInfo], int | None]


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Timers and limits of a connection. Defaults follow RFC 6733 and RFC 3539."""

    capabilities: Capabilities
    dictionary: Dictionary
    watchdog_interval: float = 30.0  # Tw (RFC 3539 §3.4.1: default 30 s, at least 6 s)
    watchdog_jitter: float = 2.0  # ± jitter (RFC 3539 §3.4.1)
    capabilities_timeout: float = 10.0  # CER/CEA wait (§5.6.1 "timeout expires")
    disconnect_timeout: float = 5.0  # DPA wait before closing anyway
    request_timeout: float = 10.0  # default for our own requests
    max_in_flight: int = 4096  # our requests awaiting answers
    admit: Admission | None = None
    duplicates: DuplicateCache | None = None
    max_message_length: int = 1 << 20

    def __post_init__(self) -> None:
        if self.watchdog_interval < 6:
            raise ValueError(f"watchdog_interval: {self.watchdog_interval} s is below RFC 3539's 6 s minimum")
        if not 0 <= self.watchdog_jitter < self.watchdog_interval:
            raise ValueError("watchdog_jitter: must be between 0 and watchdog_interval")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight: must be at least 1")


@dataclass(slots=True)
class _Pending:
    sent_at: float
    deadline: float
    end_to_end: int
    command: int


@dataclass(slots=True)
class PeerConnection:
    """State of one transport connection to one peer."""

    config: PeerConfig
    role: Role
    now: float
    rng: Callable[[], float] = field(default=random.random)
    e2e_seed: int | None = None
    state: State = field(init=False)
    watchdog: Watchdog = field(init=False, default=Watchdog.OKAY)
    peer: PeerInfo | None = field(init=False, default=None)
    _out: list[bytes] = field(init=False, default_factory=list)
    _framer: Framer = field(init=False)
    _validator: Validator = field(init=False)
    _base: Validator = field(init=False)
    _pending: dict[int, _Pending] = field(init=False, default_factory=dict)
    _timeouts: list[tuple[float, int]] = field(init=False, default_factory=list)
    _hbh: int = field(init=False)
    _e2e: int = field(init=False)
    _deadline: float | None = field(init=False, default=None)
    _last_rx: float = field(init=False)
    _tw: float = field(init=False)
    _dwr_pending: bool = field(init=False, default=False)
    #: Requests given to the app and not answered yet: End-to-End << 32 | Hop-by-Hop -> duplicate cache key.
    _unanswered: dict[int, bytes] = field(init=False, default_factory=dict)
    incoming_pending: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        cfg = self.config
        self.state = State.IDLE if self.role is Role.INITIATOR else State.WAIT_CER
        self._framer = Framer(cfg.max_message_length)
        apps = cfg.capabilities.applications
        self._validator = Validator(cfg.dictionary, apps)
        self._base = Validator(cfg.dictionary, frozenset())
        self._hbh = int(self.rng() * 0xFFFFFFFF)
        seed = int(self.now) if self.e2e_seed is None else self.e2e_seed
        # §3: high 12 bits from the clock, low 20 bits random.
        self._e2e = ((seed & 0xFFF) << 20) | int(self.rng() * 0xFFFFF)
        self._last_rx = self.now
        self._tw = self._next_tw()
        if self.role is Role.RESPONDER:
            self._deadline = self.now + cfg.capabilities_timeout

    # ----------------------------------------------------------------------------- public API
    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    @property
    def in_flight(self) -> int:
        """Our requests still waiting for an answer."""
        return len(self._pending)

    @property
    def can_send(self) -> bool:
        return self.state is State.OPEN and len(self._pending) < self.config.max_in_flight

    def data_to_send(self) -> bytes:
        """Bytes queued for the transport, in order; empties the queue."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`handle_timer` has something to do, or None."""
        timeouts, pending = self._timeouts, self._pending
        if not timeouts and self._deadline is None:  # a server's usual case: only the watchdog
            return self._last_rx + self._tw if self.state is State.OPEN else None
        while timeouts:  # drop requests answered already: their deadlines are not times anything happens
            p = pending.get(timeouts[0][1])
            if p is not None and p.deadline == timeouts[0][0]:
                break
            heapq.heappop(timeouts)
        deadlines = [d for d in (self._deadline, timeouts[0][0] if timeouts else None) if d is not None]
        if self.state is State.OPEN:
            deadlines.append(self._last_rx + self._tw)
        return min(deadlines) if deadlines else None

    def start(self, now: float) -> None:
        """Initiator: the transport is connected; send our CER (§5.6, I-Snd-CER)."""
        self._transition(Input.START)
        cer = Message(_CER, base.COMMON_MESSAGES_APPLICATION, FLAG_REQUEST, self._next_hbh(), self._next_e2e(),
                      list(self.config.capabilities.avps()))
        self._out.append(encode_message(cer))
        self._deadline = now + self.config.capabilities_timeout

    def send_request(self, msg: Message, now: float, timeout: float | None = None) -> int:
        """Queue an application request; assigns Hop-by-Hop (and End-to-End when 0). Returns Hop-by-Hop."""
        if len(self._pending) >= self.config.max_in_flight:
            raise StateError(f"{len(self._pending)} requests already in flight (max_in_flight)")
        self._transition(Input.SEND_REQUEST)
        msg.flags |= FLAG_REQUEST
        msg.hop_by_hop = self._next_hbh()
        if not msg.end_to_end:
            msg.end_to_end = self._next_e2e()
        deadline = now + (self.config.request_timeout if timeout is None else timeout)
        self._pending[msg.hop_by_hop] = _Pending(now, deadline, msg.end_to_end, msg.command)
        heapq.heappush(self._timeouts, (deadline, msg.hop_by_hop))
        self._out.append(encode_message(msg))
        return msg.hop_by_hop

    def send_answer(self, answer: Message | bytes, request: Message) -> None:
        """Queue the answer to ``request`` (a Message, or bytes already encoded by a fast path)."""
        self._transition(Input.SEND_ANSWER)
        data = answer if isinstance(answer, bytes) else encode_message(answer)
        self._out.append(data)
        if self.incoming_pending:
            self.incoming_pending -= 1
        if self._unanswered:
            key = self._unanswered.pop(request.end_to_end << 32 | request.hop_by_hop, None)
            if key is not None and self.config.duplicates is not None:
                self.config.duplicates.answered(key, data)

    def disconnect(self, now: float, cause: int = base.DisconnectCause.REBOOTING) -> list[Event]:
        """Send DPR (§5.4) when open; otherwise just close. Returns the events this causes."""
        if self.state is State.OPEN:
            self._transition(Input.DISCONNECT)
            dpr = Message(_DPR, 0, FLAG_REQUEST, self._next_hbh(), self._next_e2e(), [
                *self.config.capabilities.node.origin_avps, Avp.new(base.DISCONNECT_CAUSE, int(cause))])
            self._out.append(encode_message(dpr))
            self._deadline = now + self.config.disconnect_timeout
            return []
        if self.state in (State.CLOSING, State.CLOSED):
            return []
        return self._close(Input.DISCONNECT, "closed locally")

    def connection_lost(self, now: float) -> list[Event]:
        """The transport closed underneath us."""
        if self.state is State.CLOSED:
            return []
        return self._close(Input.TRANSPORT_CLOSED, "transport closed")

    def pending_requests(self) -> list[int]:
        """Hop-by-Hop ids of our requests still waiting for answers."""
        return list(self._pending)

    def handle_timer(self, now: float) -> list[Event]:
        """Fire whatever is due at ``now``: CER/CEA/DPA waits, request timeouts, the watchdog."""
        events: list[Event] = []
        timeouts = self._timeouts
        while timeouts and timeouts[0][0] <= now:
            _, hbh = heapq.heappop(timeouts)
            p = self._pending.pop(hbh, None)
            if p is not None:
                events.append(RequestTimedOut(hbh, p.end_to_end, p.command))
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            what = {State.WAIT_CER: "no CER", State.WAIT_CEA: "no CEA", State.CLOSING: "no DPA"}.get(self.state)
            if what is not None:
                events += self._close(Input.TIMEOUT, f"{what} within the timeout")
                return events
        if self.state is State.OPEN and now >= self._last_rx + self._tw:
            events += self._watchdog_expired(now)
        return events

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Bytes from the transport; returns what happened."""
        if self.state is State.CLOSED:
            return []
        try:
            frames = self._framer.feed(data)
        except FramingError as e:
            return self._close(Input.RCV_GARBAGE, f"framing lost: {e}")
        events: list[Event] = []
        for raw in frames:
            events += self._receive(raw, now)
            if self._is_closed():
                break
        return events

    # ----------------------------------------------------------------------------- internals
    def _is_closed(self) -> bool:
        return self.state is State.CLOSED

    def _transition(self, inp: Input) -> State:
        try:
            nxt = TRANSITIONS[(self.state, inp)]
        except KeyError:
            raise StateError(f"{inp.value} is not allowed in state {self.state.value}") from None
        self.state = nxt
        if nxt is State.CLOSED:
            self._deadline = None  # no CER/CEA/DPA wait outlives the connection
            if self._unanswered and self.config.duplicates is not None:
                # Never answered here: a retransmission on another connection must reach the app.
                for key in self._unanswered.values():
                    self.config.duplicates.forget(key)
                self._unanswered.clear()
        return nxt

    def _close(self, inp: Input, reason: str) -> list[Event]:
        self._transition(inp)
        self.state = State.CLOSED
        self._deadline = None
        return [ConnectionClosed(reason)]

    def _next_hbh(self) -> int:
        self._hbh = (self._hbh + 1) & 0xFFFFFFFF
        return self._hbh

    def _next_e2e(self) -> int:
        self._e2e = (self._e2e & 0xFFF00000) | ((self._e2e + 1) & 0xFFFFF)
        return self._e2e

    def _next_tw(self) -> float:
        cfg = self.config
        return cfg.watchdog_interval - cfg.watchdog_jitter + 2 * cfg.watchdog_jitter * self.rng()

    def _watchdog_expired(self, now: float) -> list[Event]:
        inp = WatchdogInput.TW_EXPIRED_PENDING if self._dwr_pending else WatchdogInput.TW_EXPIRED_IDLE
        before = self.watchdog
        self.watchdog = WATCHDOG[(before, inp)]
        self._last_rx = now
        self._tw = self._next_tw()
        if self.watchdog is Watchdog.DOWN:
            return self._close(Input.WATCHDOG_DOWN, "watchdog: no answer to DWR (RFC 3539 DOWN)")
        if inp is WatchdogInput.TW_EXPIRED_IDLE:
            self._send_dwr()
        return [WatchdogChanged(self.watchdog.value)] if self.watchdog is not before else []

    def _send_dwr(self) -> None:
        avps = list(self.config.capabilities.node.origin_avps)
        if self.config.capabilities.node.origin_state_id is not None:
            avps.append(Avp.new(base.ORIGIN_STATE_ID, self.config.capabilities.node.origin_state_id))
        self._out.append(encode_message(Message(_DWR, 0, FLAG_REQUEST, self._next_hbh(), self._next_e2e(), avps)))
        self._dwr_pending = True

    def _traffic(self, now: float) -> list[Event]:
        self._last_rx = now
        if self.watchdog is Watchdog.OKAY:
            return []
        self.watchdog = WATCHDOG[(self.watchdog, WatchdogInput.TRAFFIC)]
        return [WatchdogChanged(self.watchdog.value)]

    def _receive(self, raw: bytes, now: float) -> list[Event]:
        if raw[4] & FLAG_REQUEST and int.from_bytes(raw[5:8], "big") not in _BASE_COMMANDS:
            # Application request: the one-pass decoder and validator (the hot path).
            events = self._traffic(now) if self.state is State.OPEN else []
            return events + self._on_request_bytes(raw, now)
        try:
            msg = decode_message(raw)
        except ProtocolError as e:
            return self._undecodable(raw, e)
        events = self._traffic(now) if self.state is State.OPEN else []
        code = msg.command
        if msg.flags & FLAG_REQUEST:
            if code == _CER:
                return events + self._on_cer(msg)
            if code == _DWR:
                return events + self._on_dwr(msg)
            if code == _DPR:
                return events + self._on_dpr(msg)
            return events + self._on_request_bytes(raw, now)
        if code == _CER:
            return events + self._on_cea(msg)
        if code == _DWR:
            if self._transition(Input.RCV_DWA) is State.CLOSED:
                return [*events, ConnectionClosed("DWA received before the capabilities exchange")]
            self._dwr_pending = False
            return events
        if code == _DPR:
            if self._transition(Input.RCV_DPA) is State.CLOSED:
                return [*events, ConnectionClosed("DPA received")]
            return events
        return events + self._on_answer(msg, now)

    def _undecodable(self, raw: bytes, err: ProtocolError) -> list[Event]:
        """A message whose body could not be decoded: answer it if it was a request we may answer."""
        if self.state not in (State.OPEN, State.CLOSING):
            return self._close(Input.RCV_GARBAGE, f"undecodable message before capabilities exchange: {err}")
        header = err.header or decode_header(raw)
        if not header.flags & FLAG_REQUEST:
            return []
        self._out.append(encode_message(error_answer(err, self.config.capabilities.node, self.config.dictionary)))
        return [RequestRejected(err)]

    def _answer_error(self, err: ProtocolError, request: Message) -> None:
        self._out.append(encode_message(
            error_answer(err, self.config.capabilities.node, self.config.dictionary, request)))

    def _on_request_bytes(self, raw: bytes, now: float) -> list[Event]:
        if self._transition(Input.RCV_REQUEST) is State.CLOSED:
            command = int.from_bytes(raw[5:8], "big")
            return [ConnectionClosed(f"command {command} received before the capabilities exchange")]
        try:
            msg, _ = self._validator.decode_request(raw)
        except ProtocolError as e:
            try:
                request: Message | None = decode_message(raw)
            except ProtocolError:
                request = None  # body undecodable: answer from the header alone
            self._out.append(encode_message(
                error_answer(e, self.config.capabilities.node, self.config.dictionary, request)))
            return [RequestRejected(e)]
        dup = self.config.duplicates
        if dup is not None:
            host = msg.find(base.ORIGIN_HOST)
            if host is not None:
                key = dup.key(host.data, msg.end_to_end)
                stored = dup.seen(key, now)
                if stored is not None:
                    if stored:
                        self._out.append(stored[:12] + msg.hop_by_hop.to_bytes(4, "big") + stored[16:])
                    return [DuplicateRequest(msg, bool(stored))]
                self._unanswered[msg.end_to_end << 32 | msg.hop_by_hop] = key
        self.incoming_pending += 1
        return [RequestReceived(msg)]

    def _on_answer(self, msg: Message, now: float) -> list[Event]:
        if self._transition(Input.RCV_ANSWER) is State.CLOSED:
            return [ConnectionClosed(f"answer {msg.command} received before the capabilities exchange")]
        p = self._pending.pop(msg.hop_by_hop, None)
        if p is None:
            return [AnswerDiscarded(msg)]
        return [AnswerReceived(msg, p.sent_at)]

    def _on_dwr(self, msg: Message) -> list[Event]:
        if self._transition(Input.RCV_DWR) is State.CLOSED:
            return [ConnectionClosed("DWR received before the capabilities exchange")]
        try:
            self._base.check_request(msg)
        except ProtocolError as e:
            self._answer_error(e, msg)
            return [RequestRejected(e)]
        avps = [*self.config.capabilities.node.origin_avps, Avp.new(base.RESULT_CODE, _SUCCESS)]
        if self.config.capabilities.node.origin_state_id is not None:
            avps.append(Avp.new(base.ORIGIN_STATE_ID, self.config.capabilities.node.origin_state_id))
        self._out.append(encode_message(make_answer(msg, [avps[2], *avps[:2], *avps[3:]])))
        return []

    def _on_dpr(self, msg: Message) -> list[Event]:
        if self.state not in (State.OPEN, State.CLOSING):
            return self._close(Input.RCV_DPR, "DPR received before the capabilities exchange")
        cause = msg.get(base.DISCONNECT_CAUSE, int(base.DisconnectCause.REBOOTING))
        avps = [Avp.new(base.RESULT_CODE, _SUCCESS), *self.config.capabilities.node.origin_avps]
        self._out.append(encode_message(make_answer(msg, avps)))
        self._transition(Input.RCV_DPR)
        self._deadline = None
        return [DisconnectRequested(int(cause)), ConnectionClosed("peer sent DPR")]

    def _cea(self, cer: Message, result: int, *, message: str = "", failed: Avp | None = None) -> None:
        avps = [Avp.new(base.RESULT_CODE, result), *self.config.capabilities.avps()]
        if message:
            avps.append(Avp.new(base.ERROR_MESSAGE, message[:200]))
        if failed is not None:
            avps.append(Avp.new(base.FAILED_AVP, [failed]))
        # §7.1.3: protocol errors (3xxx, e.g. 3010 DIAMETER_UNKNOWN_PEER) are sent with the E bit.
        self._out.append(encode_message(make_answer(cer, avps, error=3000 <= result < 4000)))

    def _on_cer(self, msg: Message) -> list[Event]:
        if self.state is not State.WAIT_CER:
            if self.state in (State.OPEN, State.CLOSING):
                # A second CER on an established connection: refuse it, keep the connection (§5.6).
                self._transition(Input.RCV_CER_REJECTED)
                self._cea(msg, _RC.DIAMETER_UNABLE_TO_COMPLY, message="capabilities already exchanged")
                return []
            return self._close(Input.RCV_CER_REJECTED, "CER received by the initiator")
        try:
            self._base.check_request(msg)
        except ProtocolError as e:
            if e.is_protocol_error:
                self._answer_error(e, msg)
            else:
                self._cea(msg, e.result_code, message=e.message, failed=e.failed_avp)
            return self._reject_capabilities(e.result_code, e.message, by_peer=False)
        host, realm, product, vendor, state_id, addresses = peer_info_avps(msg)
        common = common_applications(self.config.capabilities.applications, peer_applications(msg))
        info = PeerInfo(host, realm, common, product, vendor, state_id, addresses)
        if not common:
            self._cea(msg, _RC.DIAMETER_NO_COMMON_APPLICATION, message="no common application")
            return self._reject_capabilities(_RC.DIAMETER_NO_COMMON_APPLICATION, "no common application", False)
        refusal = self.config.admit(info) if self.config.admit is not None else None
        if refusal is not None:
            text = {_RC.DIAMETER_UNKNOWN_PEER: "peer not allowed", _RC.ELECTION_LOST: "election lost"}.get(
                _RC(refusal) if refusal in _RC._value2member_map_ else _RC.DIAMETER_UNABLE_TO_COMPLY, "refused")
            self._cea(msg, refusal, message=text)
            return self._reject_capabilities(refusal, text, by_peer=False)
        self._cea(msg, _SUCCESS)
        self._transition(Input.RCV_CER_OK)
        self._deadline = None
        self.peer = info
        return [ConnectionOpened(info)]

    def _reject_capabilities(self, code: int, reason: str, by_peer: bool) -> list[Event]:
        events: list[Event] = [CapabilitiesRejected(int(code), reason, by_peer)]
        if self.state in (State.WAIT_CER, State.WAIT_CEA):
            events += self._close(Input.RCV_CER_REJECTED if self.state is State.WAIT_CER else Input.RCV_CEA_ERROR,
                                  reason)
        return events

    def _on_cea(self, msg: Message) -> list[Event]:
        if self.state is not State.WAIT_CEA:
            if self.state in (State.OPEN, State.CLOSING):
                self._transition(Input.RCV_CEA_OK)
                return []
            return self._close(Input.RCV_CEA_ERROR, "CEA received without a CER")
        try:
            self._base.check_answer(msg)
        except DiameterError as e:
            return self._reject_capabilities(_RC.DIAMETER_UNABLE_TO_COMPLY, f"invalid CEA: {e}", by_peer=True)
        result = msg.get(base.RESULT_CODE)
        if result != _SUCCESS:
            text = msg.get(base.ERROR_MESSAGE, "") or f"CEA Result-Code {result}"
            return self._reject_capabilities(int(result or 0), text, by_peer=True)
        host, realm, product, vendor, state_id, addresses = peer_info_avps(msg)
        common = common_applications(self.config.capabilities.applications, peer_applications(msg))
        if not common:
            return self._reject_capabilities(_RC.DIAMETER_NO_COMMON_APPLICATION, "no common application in CEA",
                                             by_peer=False)
        self._transition(Input.RCV_CEA_OK)
        self._deadline = None
        self.peer = PeerInfo(host, realm, common, product, vendor, state_id, addresses)
        return [ConnectionOpened(self.peer)]
