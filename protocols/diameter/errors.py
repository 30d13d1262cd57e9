"""Typed Diameter errors: each says whose fault it is and how to answer (RFC 6733 §7).

A :class:`ProtocolError` raised while handling a received message carries the Result-Code to answer
with and, where §7.5 asks for one, the Failed-AVP to include. A :class:`FramingError` means the byte
stream itself can no longer be trusted: the only correct reaction is to close the transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Avp, Header

__all__ = [
    "DiameterError",
    "EncodeError",
    "FramingError",
    "ProtocolError",
    "StateError",
]


class DiameterError(Exception):
    """Root of every error this package raises."""


class EncodeError(DiameterError, ValueError):
    """Our own program asked for a value that cannot be encoded (a local bug, never the peer's)."""


class FramingError(DiameterError):
    """The peer's byte stream is unusable (bad length, oversized message): close the transport.

    RFC 6733 §3: a message length that is not a multiple of 4 or shorter than the header cannot be
    resynchronised on a stream transport.
    """


class ProtocolError(DiameterError):
    """The peer sent something the protocol forbids; answer with ``result_code``.

    ``failed_avp`` is the AVP to put inside Failed-AVP (RFC 6733 §7.5), already shaped as §7.5 asks:
    the offending AVP itself, a zero-filled example of a missing one, or a Grouped AVP wrapping the
    offending member. ``header`` is the received header when it could be decoded, so that an answer
    can copy its identifiers even when the body was broken.
    """

    def __init__(
        self,
        result_code: int,
        message: str,
        *,
        failed_avp: Avp | None = None,
        header: Header | None = None,
    ) -> None:
        super().__init__(f"{result_code}: {message}")
        self.result_code = result_code
        self.message = message
        self.failed_avp = failed_avp
        self.header = header

    @property
    def is_protocol_error(self) -> bool:
        """3xxx answers set the E bit and use the generic answer-message format (§7.2)."""
        return 3000 <= self.result_code < 4000


class StateError(DiameterError):
    """Our own program asked the peer state machine for something its state does not allow."""
