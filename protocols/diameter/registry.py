"""The node's peer table: one open connection per peer, and election (RFC 6733 §5.6.4).

When two nodes connect to each other at once, each has an initiated connection waiting for its CEA
and receives the other's CER on an accepted one. The node whose Origin-Host is higher wins: it keeps
the connection the other side initiated and closes its own; the loser answers the other CER with
4003 DIAMETER_ELECTION_LOST and keeps waiting for its CEA. Sans-I/O: the registry says which
connection to drop; the transport layer drops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from . import base_rfc6733 as base
from .events import PeerInfo
from .peer import elect

__all__ = ["Admission", "PeerRegistry"]

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Admission(Generic[C]):
    """The registry's verdict on a CER: ``refuse`` is a Result-Code or None; ``drop`` a connection to close."""

    refuse: int | None
    drop: C | None = None


@dataclass(slots=True)
class PeerRegistry(Generic[C]):
    """Connections by peer identity (lower-cased Origin-Host), for one local node."""

    local_host: str
    open: dict[str, C] = field(default_factory=dict)
    connecting: dict[str, C] = field(default_factory=dict)

    def initiating(self, peer_host: str, conn: C) -> None:
        """We are connecting to ``peer_host`` (our CER is, or is about to be, on its way)."""
        self.connecting[peer_host.lower()] = conn

    def admit(self, info: PeerInfo, conn: C) -> Admission[C]:
        """A CER from ``info.host`` arrived on accepted connection ``conn``."""
        key = info.host.lower()
        if key in self.open and self.open[key] is not conn:
            # R-Open + R-Conn-CER: we already talk to this peer.
            return Admission(base.ResultCode.DIAMETER_UNABLE_TO_COMPLY)
        ours = self.connecting.get(key)
        if ours is not None and ours is not conn:
            if elect(self.local_host, info.host):
                del self.connecting[key]
                self.open[key] = conn
                return Admission(None, drop=ours)
            return Admission(base.ResultCode.ELECTION_LOST)
        self.open[key] = conn
        return Admission(None)

    def opened(self, peer_host: str, conn: C) -> C | None:
        """Our initiated ``conn`` got its CEA. Returns an older connection to the peer to drop, if any."""
        key = peer_host.lower()
        if self.connecting.get(key) is conn:
            del self.connecting[key]
        other = self.open.get(key)
        self.open[key] = conn
        return other if other is not None and other is not conn else None

    def closed(self, conn: C) -> None:
        for table in (self.open, self.connecting):
            for key in [k for k, c in table.items() if c is conn]:
                del table[key]

    def get(self, peer_host: str) -> C | None:
        return self.open.get(peer_host.lower())
