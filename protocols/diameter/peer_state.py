"""The peer state machine as tables (RFC 6733 §5.6, watchdog RFC 3539 §3.4).

One connection's life is ``TRANSITIONS[(state, input)] -> next state``; the connection looks the
pair up before acting and a pair that is not in the table raises :class:`StateError`. The table is
total over every state and every input that can come from the peer or the clock, so nothing the
peer sends can reach a missing entry; local calls the state does not allow (``send_request`` while
closing) are the ones left out on purpose.

The states fold §5.6's per-role states: an initiator goes IDLE -> WAIT_CEA -> OPEN, a responder
starts in WAIT_CER; election between two connections to one peer is ``registry.PeerRegistry``'s job.
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "WATCHDOG", "Input", "State", "Watchdog", "WatchdogInput"]


class State(enum.Enum):
    # Members are singletons: identity hashing (C) instead of Enum's Python-level __hash__ keeps
    # the per-message table lookups cheap.
    __hash__ = object.__hash__

    IDLE = "idle"  # initiator, transport up, CER not sent yet
    WAIT_CER = "wait-cer"  # responder waiting for the peer's CER (§5.6.1)
    WAIT_CEA = "wait-cea"  # initiator sent CER (Wait-I-CEA)
    OPEN = "open"  # I-Open / R-Open
    CLOSING = "closing"  # we sent DPR and wait for DPA
    CLOSED = "closed"


class Input(enum.Enum):
    __hash__ = object.__hash__

    START = "start"  # local: send our CER
    RCV_CER_OK = "rcv-cer-ok"
    RCV_CER_REJECTED = "rcv-cer-rejected"  # 5010, 3010, 4003...
    RCV_CEA_OK = "rcv-cea-ok"
    RCV_CEA_ERROR = "rcv-cea-error"
    RCV_DWR = "rcv-dwr"
    RCV_DWA = "rcv-dwa"
    RCV_DPR = "rcv-dpr"
    RCV_DPA = "rcv-dpa"
    RCV_REQUEST = "rcv-request"  # any other request
    RCV_ANSWER = "rcv-answer"  # any other answer
    RCV_GARBAGE = "rcv-garbage"  # framing lost: stream unusable
    TIMEOUT = "timeout"  # CER/CEA/DPA wait expired
    WATCHDOG_DOWN = "watchdog-down"
    SEND_REQUEST = "send-request"  # local
    SEND_ANSWER = "send-answer"  # local
    DISCONNECT = "disconnect"  # local: send DPR
    TRANSPORT_CLOSED = "transport-closed"


S, In = State, Input

_ALWAYS_CLOSED = {
    In.TRANSPORT_CLOSED: S.CLOSED,
    In.RCV_GARBAGE: S.CLOSED,
}

TRANSITIONS: dict[tuple[State, Input], State] = {
    # Initiator before its CER: the peer speaks first only if it is broken (§5.6.1).
    **{(S.IDLE, i): S.CLOSED for i in In if i.name.startswith("RCV_")},
    (S.IDLE, In.START): S.WAIT_CEA,
    (S.IDLE, In.TIMEOUT): S.IDLE,
    (S.IDLE, In.WATCHDOG_DOWN): S.IDLE,
    (S.IDLE, In.DISCONNECT): S.CLOSED,
    (S.IDLE, In.TRANSPORT_CLOSED): S.CLOSED,
    # Responder: a CER first, anything else closes without an answer (§5.6.1).
    **{(S.WAIT_CER, i): S.CLOSED for i in In if i.name.startswith("RCV_")},
    (S.WAIT_CER, In.RCV_CER_OK): S.OPEN,
    (S.WAIT_CER, In.TIMEOUT): S.CLOSED,
    (S.WAIT_CER, In.WATCHDOG_DOWN): S.WAIT_CER,
    (S.WAIT_CER, In.DISCONNECT): S.CLOSED,
    (S.WAIT_CER, In.TRANSPORT_CLOSED): S.CLOSED,
    # Initiator waiting for the CEA.
    **{(S.WAIT_CEA, i): S.CLOSED for i in In if i.name.startswith("RCV_")},
    (S.WAIT_CEA, In.RCV_CEA_OK): S.OPEN,
    (S.WAIT_CEA, In.TIMEOUT): S.CLOSED,
    (S.WAIT_CEA, In.WATCHDOG_DOWN): S.WAIT_CEA,
    (S.WAIT_CEA, In.DISCONNECT): S.CLOSED,
    (S.WAIT_CEA, In.TRANSPORT_CLOSED): S.CLOSED,
    # Open: traffic flows; a second CER is answered with an error and ignored.
    (S.OPEN, In.RCV_CER_OK): S.OPEN,
    (S.OPEN, In.RCV_CER_REJECTED): S.OPEN,
    (S.OPEN, In.RCV_CEA_OK): S.OPEN,
    (S.OPEN, In.RCV_CEA_ERROR): S.OPEN,
    (S.OPEN, In.RCV_DWR): S.OPEN,
    (S.OPEN, In.RCV_DWA): S.OPEN,
    (S.OPEN, In.RCV_DPR): S.CLOSED,  # R-Rcv-DPR: send DPA, disconnect
    (S.OPEN, In.RCV_DPA): S.OPEN,  # unsolicited DPA: ignored
    (S.OPEN, In.RCV_REQUEST): S.OPEN,
    (S.OPEN, In.RCV_ANSWER): S.OPEN,
    (S.OPEN, In.TIMEOUT): S.OPEN,
    (S.OPEN, In.WATCHDOG_DOWN): S.CLOSED,
    (S.OPEN, In.SEND_REQUEST): S.OPEN,
    (S.OPEN, In.SEND_ANSWER): S.OPEN,
    (S.OPEN, In.DISCONNECT): S.CLOSING,
    # Closing: in-flight traffic drains; DPA (or the peer's own DPR, or a timeout) ends it.
    (S.CLOSING, In.RCV_CER_OK): S.CLOSING,
    (S.CLOSING, In.RCV_CER_REJECTED): S.CLOSING,
    (S.CLOSING, In.RCV_CEA_OK): S.CLOSING,
    (S.CLOSING, In.RCV_CEA_ERROR): S.CLOSING,
    (S.CLOSING, In.RCV_DWR): S.CLOSING,
    (S.CLOSING, In.RCV_DWA): S.CLOSING,
    (S.CLOSING, In.RCV_DPR): S.CLOSED,
    (S.CLOSING, In.RCV_DPA): S.CLOSED,
    (S.CLOSING, In.RCV_REQUEST): S.CLOSING,
    (S.CLOSING, In.RCV_ANSWER): S.CLOSING,
    (S.CLOSING, In.TIMEOUT): S.CLOSED,
    (S.CLOSING, In.WATCHDOG_DOWN): S.CLOSED,
    (S.CLOSING, In.SEND_ANSWER): S.CLOSING,
    (S.CLOSING, In.DISCONNECT): S.CLOSING,
    # Closed is final: whatever still arrives is dropped.
    **{(S.CLOSED, i): S.CLOSED for i in In if i not in (In.START, In.SEND_REQUEST, In.SEND_ANSWER)},
}
for _state in (S.IDLE, S.WAIT_CER, S.WAIT_CEA, S.OPEN, S.CLOSING):
    for _input, _next in _ALWAYS_CLOSED.items():
        TRANSITIONS.setdefault((_state, _input), _next)
# The peer's bytes cannot be framed any more: close whatever the state.
TRANSITIONS[(S.OPEN, In.RCV_GARBAGE)] = S.CLOSED
TRANSITIONS[(S.CLOSING, In.RCV_GARBAGE)] = S.CLOSED


class Watchdog(enum.Enum):
    """RFC 3539 §3.4 states of an open connection (REOPEN is the transport's reconnect logic)."""

    __hash__ = object.__hash__

    OKAY = "okay"
    SUSPECT = "suspect"
    DOWN = "down"


class WatchdogInput(enum.Enum):
    __hash__ = object.__hash__

    TRAFFIC = "traffic"  # any message received (§3.4.1: resets the timer)
    TW_EXPIRED_IDLE = "tw-expired-idle"  # Tw passed with no DWR outstanding: send one
    TW_EXPIRED_PENDING = "tw-expired-pending"  # Tw passed and our DWR is still unanswered


WATCHDOG: dict[tuple[Watchdog, WatchdogInput], Watchdog] = {
    (Watchdog.OKAY, WatchdogInput.TRAFFIC): Watchdog.OKAY,
    (Watchdog.OKAY, WatchdogInput.TW_EXPIRED_IDLE): Watchdog.OKAY,  # send DWR
    (Watchdog.OKAY, WatchdogInput.TW_EXPIRED_PENDING): Watchdog.SUSPECT,  # failover point
    (Watchdog.SUSPECT, WatchdogInput.TRAFFIC): Watchdog.OKAY,
    (Watchdog.SUSPECT, WatchdogInput.TW_EXPIRED_IDLE): Watchdog.DOWN,
    (Watchdog.SUSPECT, WatchdogInput.TW_EXPIRED_PENDING): Watchdog.DOWN,  # close the connection
    (Watchdog.DOWN, WatchdogInput.TRAFFIC): Watchdog.DOWN,
    (Watchdog.DOWN, WatchdogInput.TW_EXPIRED_IDLE): Watchdog.DOWN,
    (Watchdog.DOWN, WatchdogInput.TW_EXPIRED_PENDING): Watchdog.DOWN,
}
