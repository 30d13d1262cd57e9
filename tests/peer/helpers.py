"""Building blocks for the sans-I/O peer tests: dictionary, capabilities, messages, an in-memory pair."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from protocols.diameter import Avp, Dictionary, LocalNode, Message, decode_message, encode_message, make_answer
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.capabilities import Capabilities
from protocols.diameter.events import Event
from protocols.diameter.framer import Framer
from protocols.diameter.message import FLAG_PROXIABLE, FLAG_REQUEST
from protocols.diameter.peer import PeerConfig, PeerConnection, Role
from protocols.diameter.peer_state import State

DICT = Dictionary.of(base.AVPS, base.COMMANDS, s13.AVPS, s13.COMMANDS)
EIR = LocalNode("eir.example.org", "example.org")
MME = LocalNode("mme.example.org", "example.org")
S13_VSAI = ((s13.VENDOR_3GPP, s13.APPLICATION_ID),)

_session = itertools.count(1)


def caps(node: LocalNode = EIR, *, auth: Iterable[int] = (), vendor: tuple[tuple[int, int], ...] = S13_VSAI,
         acct: Iterable[int] = ()) -> Capabilities:
    return Capabilities(node, auth_applications=frozenset(auth), acct_applications=frozenset(acct),
                        vendor_applications=vendor, supported_vendors=(s13.VENDOR_3GPP,))


def config(node: LocalNode = EIR, capabilities: Capabilities | None = None, **kw: Any) -> PeerConfig:
    """Deterministic timers by default: Tw = 30 s exactly (no jitter)."""
    kw.setdefault("watchdog_jitter", 0.0)
    return PeerConfig(capabilities or caps(node), DICT, **kw)


def fixed_rng(value: float = 0.5) -> Callable[[], float]:
    return lambda: value


def ecr(imei: str = "49015420323751", origin: LocalNode = MME, *, e2e: int = 0) -> Message:
    m = Message(s13.ECR.code, s13.APPLICATION_ID, FLAG_REQUEST | FLAG_PROXIABLE, 0, e2e)
    m.add(base.SESSION_ID, f"{origin.host};1;{next(_session)}").add(base.AUTH_SESSION_STATE, 1)
    m.add(base.ORIGIN_HOST, origin.host).add(base.ORIGIN_REALM, origin.realm)
    m.add(base.DESTINATION_REALM, "example.org")
    m.add(s13.TERMINAL_INFORMATION, [Avp.new(s13.IMEI, imei)])
    return m


def eca(request: Message, node: LocalNode = EIR, status: int = 0) -> Message:
    return make_answer(request, [Avp.new(base.AUTH_SESSION_STATE, 1), *node.origin_avps,
                                 Avp.new(base.RESULT_CODE, 2001), Avp.new(s13.EQUIPMENT_STATUS, status)])


def cer(node: LocalNode = MME, capabilities: Capabilities | None = None, *, hbh: int = 1, e2e: int = 1,
        drop: tuple[int, ...] = ()) -> Message:
    """A CER as the codec builds it; ``drop`` removes AVP codes (to build broken ones)."""
    c = capabilities or caps(node)
    avps = [a for a in c.avps() if a.code not in drop]
    return Message(base.CER.code, 0, FLAG_REQUEST, hbh, e2e, avps)


def request_msg(command: Any, node: LocalNode = MME, *, hbh: int = 7, e2e: int = 7, extra: Iterable[Avp] = ()
                ) -> Message:
    return Message(command.code, 0, FLAG_REQUEST, hbh, e2e, [*node.origin_avps, *extra])


def messages(data: bytes) -> list[Message]:
    """Decode every message in a chunk of stream bytes."""
    return [decode_message(raw) for raw in Framer().feed(data)]


def types(events: Iterable[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


@dataclass
class Pair:
    """An initiator (the MME) and a responder (the EIR) joined in memory.

    ``pump`` moves queued bytes both ways until nothing is left and collects each side's events.
    """

    client: PeerConnection
    server: PeerConnection
    now: float = 0.0
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    to_server: list[bytes] = field(default_factory=list)
    to_client: list[bytes] = field(default_factory=list)

    @classmethod
    def make(cls, client_cfg: PeerConfig | None = None, server_cfg: PeerConfig | None = None, *,
             now: float = 0.0, open: bool = True, **kw: Any) -> Pair:
        ccfg = client_cfg or config(MME, **kw)
        scfg = server_cfg or config(EIR, **kw)
        pair = cls(PeerConnection(ccfg, Role.INITIATOR, now, rng=fixed_rng(0.25), e2e_seed=0x123),
                   PeerConnection(scfg, Role.RESPONDER, now, rng=fixed_rng(0.75), e2e_seed=0x456), now)
        if open:
            pair.client.start(now)
            pair.pump()
            assert pair.client.state is State.OPEN and pair.server.state is State.OPEN
            pair.clear()
        return pair

    def clear(self) -> None:
        self.client_events.clear()
        self.server_events.clear()

    def pump(self, max_rounds: int = 50) -> None:
        for _ in range(max_rounds):
            c, s = self.client.data_to_send(), self.server.data_to_send()
            if not c and not s:
                return
            if c:
                self.to_server.append(c)
                self.server_events += self.server.receive_data(c, self.now)
            if s:
                self.to_client.append(s)
                self.client_events += self.client.receive_data(s, self.now)
        raise AssertionError("pump did not settle")

    def advance(self, to: float) -> None:
        """Move the clock to ``to``, firing both sides' timers in deadline order, then pump."""
        for _ in range(10_000):
            deadlines = [(d, side) for side, d in (("c", self.client.next_deadline()),
                                                    ("s", self.server.next_deadline())) if d is not None and d <= to]
            if not deadlines:
                break
            d, side = min(deadlines)
            self.now = max(self.now, d)
            if side == "c":
                self.client_events += self.client.handle_timer(self.now)
            else:
                self.server_events += self.server.handle_timer(self.now)
            self.pump()
        else:
            raise AssertionError("timers did not settle")
        self.now = max(self.now, to)


def with_duplicates(cfg: PeerConfig, cache: Any) -> PeerConfig:
    return replace(cfg, duplicates=cache)


__all__ = ["DICT", "EIR", "MME", "Pair", "caps", "cer", "config", "eca", "ecr", "encode_message", "messages",
           "request_msg", "types", "with_duplicates"]
