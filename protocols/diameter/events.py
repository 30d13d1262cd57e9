"""Events a peer connection reports: small frozen dataclasses named for what happened."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError
from .message import Message

__all__ = [
    "AnswerDiscarded",
    "AnswerReceived",
    "CapabilitiesRejected",
    "ConnectionClosed",
    "ConnectionOpened",
    "DisconnectRequested",
    "DuplicateRequest",
    "Event",
    "PeerInfo",
    "RequestReceived",
    "RequestRejected",
    "RequestTimedOut",
    "WatchdogChanged",
]


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the capabilities exchange told us about the peer (RFC 6733 §5.3)."""

    host: str
    realm: str
    applications: frozenset[int]
    product_name: str = ""
    vendor_id: int = 0
    origin_state_id: int | None = None
    host_ip_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    """The capabilities exchange succeeded; ``applications`` are the common ones (§5.3)."""

    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class CapabilitiesRejected:
    """The exchange failed with ``result_code`` (ours or the peer's); the connection closes."""

    result_code: int
    reason: str
    by_peer: bool


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A valid application request arrived; answer it with ``PeerConnection.send_answer``."""

    message: Message


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A request failed validation and was answered with ``error.result_code`` by the connection."""

    error: ProtocolError


@dataclass(frozen=True, slots=True)
class DuplicateRequest:
    """A request repeated (Origin-Host, End-to-End) of a recent one (§5.5.4, §3).

    ``answered`` tells whether the stored answer was sent again (True) or the original is still
    being processed and the duplicate was dropped (False).
    """

    message: Message
    answered: bool


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    """An answer to a request we sent (matched by Hop-by-Hop Id)."""

    message: Message
    request_sent_at: float


@dataclass(frozen=True, slots=True)
class AnswerDiscarded:
    """An answer whose Hop-by-Hop Id matches nothing we sent (discarded, §6.2.1)."""

    message: Message


@dataclass(frozen=True, slots=True)
class RequestTimedOut:
    """No answer to our request before its deadline."""

    hop_by_hop: int
    end_to_end: int
    command: int


@dataclass(frozen=True, slots=True)
class WatchdogChanged:
    """The RFC 3539 watchdog moved between OKAY and SUSPECT (DOWN closes the connection)."""

    state: str


@dataclass(frozen=True, slots=True)
class DisconnectRequested:
    """The peer sent DPR with ``cause`` (§5.4); we answered DPA and the connection closes."""

    cause: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The transport must be closed now (after flushing ``data_to_send``)."""

    reason: str


Event = (
    ConnectionOpened
    | CapabilitiesRejected
    | RequestReceived
    | RequestRejected
    | DuplicateRequest
    | AnswerReceived
    | AnswerDiscarded
    | RequestTimedOut
    | WatchdogChanged
    | DisconnectRequested
    | ConnectionClosed
)
