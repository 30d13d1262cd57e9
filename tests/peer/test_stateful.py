"""Random interleavings of everything two connected peers can do to each other (hypothesis.stateful).

Invariants: only StateError from local calls the state forbids, nothing else ever raised; CLOSED is
final and, once drained, queues no bytes; every answer we get matches a request still outstanding.
"""

from __future__ import annotations

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from protocols.diameter import Avp, Message, encode_message
from protocols.diameter import base_rfc6733 as base
from protocols.diameter.duplicates import DuplicateCache
from protocols.diameter.errors import StateError
from protocols.diameter.events import (
    AnswerDiscarded,
    AnswerReceived,
    ConnectionClosed,
    DuplicateRequest,
    Event,
    RequestReceived,
    RequestTimedOut,
)
from protocols.diameter.peer import PeerConnection, Role
from protocols.diameter.peer_state import State

from .helpers import EIR, MME, config, eca, ecr, fixed_rng, with_duplicates

SIDES = st.sampled_from(["client", "server"])


class Side:
    def __init__(self, conn: PeerConnection) -> None:
        self.conn = conn
        self.inbox: list[bytes] = []  # bytes on their way to this side
        self.outstanding: set[int] = set()  # our requests not answered or timed out yet
        self.received: list[Message] = []  # requests given to us, not answered yet
        self.raw_requests: list[bytes] = []  # requests we sent (to replay as duplicates)
        self.closed_events = 0
        self.was_closed = False
        self.drained_after_close = False


class PeerPair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        cache = DuplicateCache(window=20.0, max_entries=50)
        self.sides = {
            "client": Side(PeerConnection(config(MME, watchdog_interval=6.0, max_in_flight=8, request_timeout=5.0,
                                                 capabilities_timeout=3.0, disconnect_timeout=2.0),
                                          Role.INITIATOR, 0.0, rng=fixed_rng(0.3), e2e_seed=1)),
            "server": Side(PeerConnection(with_duplicates(config(EIR, watchdog_interval=7.0, max_in_flight=8,
                                                                 capabilities_timeout=3.0), cache),
                                          Role.RESPONDER, 0.0, rng=fixed_rng(0.6), e2e_seed=2)),
        }

    def other(self, name: str) -> Side:
        return self.sides["server" if name == "client" else "client"]

    # ------------------------------------------------------------------ plumbing
    def collect(self, side: Side, events: list[Event]) -> None:
        for ev in events:
            event(type(ev).__name__)
            if isinstance(ev, AnswerReceived):
                assert ev.message.hop_by_hop in side.outstanding, "answer matched a request not outstanding"
                side.outstanding.discard(ev.message.hop_by_hop)
            elif isinstance(ev, AnswerDiscarded):
                assert ev.message.hop_by_hop not in side.outstanding
            elif isinstance(ev, RequestTimedOut):
                assert ev.hop_by_hop in side.outstanding
                side.outstanding.discard(ev.hop_by_hop)
            elif isinstance(ev, RequestReceived):
                assert not side.was_closed
                side.received.append(ev.message)
            elif isinstance(ev, DuplicateRequest):
                assert not side.was_closed
            elif isinstance(ev, ConnectionClosed):
                side.closed_events += 1
            if not isinstance(ev, RequestTimedOut):
                assert not side.was_closed, f"{ev} after CLOSED"
        if side.conn.state is State.CLOSED:
            side.was_closed = True

    def drain(self, name: str) -> None:
        side = self.sides[name]
        data = side.conn.data_to_send()
        if side.drained_after_close:
            assert data == b"", "bytes queued after CLOSED"
        if side.conn.state is State.CLOSED:
            side.drained_after_close = True
        if data:
            self.other(name).inbox.append(data)

    def drain_all(self) -> None:
        self.drain("client")
        self.drain("server")

    # ------------------------------------------------------------------ rules
    @initialize(open_first=st.integers(0, 5))
    def maybe_open(self, open_first: int) -> None:
        """Most runs begin with a completed capabilities exchange, so traffic rules have something to do."""
        if open_first == 0:
            return
        self.start()
        for _ in range(3):
            self.deliver("server", 0, True)
            self.deliver("client", 0, True)
        assert self.sides["client"].conn.state is State.OPEN
        assert self.sides["server"].conn.state is State.OPEN

    @rule()
    def start(self) -> None:
        side = self.sides["client"]
        try:
            side.conn.start(self.now)
        except StateError:
            assert side.conn.state is not State.IDLE
        self.drain("client")

    @rule(name=SIDES, cut=st.integers(0, 400), everything=st.booleans())
    def deliver(self, name: str, cut: int, everything: bool) -> None:
        side = self.sides[name]
        if not side.inbox:
            return
        data = b"".join(side.inbox)
        side.inbox.clear()
        if not everything and cut < len(data):
            data, rest = data[:cut], data[cut:]
            side.inbox.append(rest)
        self.collect(side, side.conn.receive_data(data, self.now))
        self.drain(name)

    @rule(name=SIDES, timeout=st.floats(0.5, 10.0))
    def request(self, name: str, timeout: float) -> None:
        side = self.sides[name]
        msg = ecr(origin=MME if name == "client" else EIR)
        try:
            hbh = side.conn.send_request(msg, self.now, timeout)
        except StateError:
            assert not side.conn.can_send
            return
        assert hbh not in side.outstanding
        side.outstanding.add(hbh)
        data = side.conn.data_to_send()
        side.raw_requests.append(data)
        self.other(name).inbox.append(data)

    @rule(name=SIDES, data=st.data())
    def answer(self, name: str, data: st.DataObject) -> None:
        side = self.sides[name]
        if not side.received:
            return
        req = side.received.pop(data.draw(st.integers(0, len(side.received) - 1)))
        try:
            side.conn.send_answer(eca(req, EIR if name == "server" else MME), req)
        except StateError:
            assert side.conn.state not in (State.OPEN, State.CLOSING)
        self.drain(name)

    @rule(name=SIDES, timeout=st.floats(0.5, 10.0), answer_it=st.booleans())
    def round_trip(self, name: str, timeout: float, answer_it: bool) -> None:
        """A request delivered at once and (maybe) answered at once: the common case."""
        other = "server" if name == "client" else "client"
        self.request(name, timeout)
        self.deliver(other, 0, True)
        side = self.sides[other]
        if answer_it and side.received:
            req = side.received.pop()
            try:
                side.conn.send_answer(eca(req, EIR if other == "server" else MME), req)
            except StateError:
                assert side.conn.state not in (State.OPEN, State.CLOSING)
            self.drain(other)
            self.deliver(name, 0, True)

    @rule(data=st.data())
    def replay_request(self, data: st.DataObject) -> None:
        """The MME retransmits an old request (same End-to-End): a duplicate for the EIR."""
        if not self.sides["client"].raw_requests:
            return
        raw = data.draw(st.sampled_from(self.sides["client"].raw_requests))
        self.sides["server"].inbox.append(raw[:12] + bytes(4) + raw[16:])

    @rule(dt=st.floats(0.0, 8.0))
    def advance(self, dt: float) -> None:
        self.now += dt
        for name, side in self.sides.items():
            self.collect(side, side.conn.handle_timer(self.now))
            self.drain(name)

    @rule(name=SIDES)
    def lose_outgoing(self, name: str) -> None:
        """Whatever is in flight towards ``name`` is lost (DWRs and DWAs included: watchdog silence)."""
        self.sides[name].inbox.clear()

    @rule(name=SIDES, cause=st.sampled_from(list(base.DisconnectCause)), rarely=st.integers(0, 2))
    def disconnect(self, name: str, cause: base.DisconnectCause, rarely: int) -> None:
        if rarely:
            return
        side = self.sides[name]
        self.collect(side, side.conn.disconnect(self.now, cause))
        self.drain(name)

    @rule(name=SIDES, rarely=st.integers(0, 5))
    def transport_lost(self, name: str, rarely: int) -> None:
        if rarely:
            return
        side = self.sides[name]
        self.collect(side, side.conn.connection_lost(self.now))
        self.drain(name)

    @rule(name=SIDES, junk=st.binary(min_size=1, max_size=64), rarely=st.integers(0, 3))
    def garbage(self, name: str, junk: bytes, rarely: int) -> None:
        if rarely:
            return
        self.sides[name].inbox.append(junk)

    @rule(name=SIDES, command=st.sampled_from([257, 280, 282, 324, 999]), flags=st.integers(0, 255),
          app=st.sampled_from([0, 16777252, 4]), with_origin=st.booleans(), hbh=st.integers(0, 2**32 - 1),
          rarely=st.integers(0, 2))
    def odd_message(self, name: str, command: int, flags: int, app: int, with_origin: bool, hbh: int,
                    rarely: int) -> None:
        """A well-framed message with arbitrary header bits and a few AVPs."""
        if rarely:
            return
        origin = MME if name == "server" else EIR
        avps: list[Avp] = list(origin.origin_avps) if with_origin else []
        avps.append(Avp.new(base.RESULT_CODE, 2001))
        self.sides[name].inbox.append(encode_message(Message(command, app, flags, hbh, hbh, avps)))

    # ------------------------------------------------------------------ invariants
    @invariant()
    def closed_is_final(self) -> None:
        for side in self.sides.values():
            if side.was_closed:
                assert side.conn.state is State.CLOSED
            assert side.closed_events <= 1
            assert side.closed_events == (1 if side.conn.state is State.CLOSED else 0)

    @invariant()
    def in_flight_is_bounded(self) -> None:
        for side in self.sides.values():
            assert side.conn.in_flight <= side.conn.config.max_in_flight
            if side.conn.state is not State.CLOSED:
                assert set(side.conn.pending_requests()) == side.outstanding


PeerPair.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestPeerPair = PeerPair.TestCase
