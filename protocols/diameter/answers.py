"""Building answers (RFC 6733 §6.2) and error answers (§7.1, §7.2).

Every answer copies the request's Hop-by-Hop and End-to-End identifiers and its P bit, puts the
Session-Id first, copies every Proxy-Info AVP in order, and never carries Destination-Host or
Destination-Realm. Protocol errors (3xxx) set the E bit and use the generic answer-message format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from . import base_rfc6733 as base
from .dictionary import CommandDef, Dictionary
from .errors import ProtocolError
from .message import _HEADER, FLAG_ERROR, FLAG_PROXIABLE, HEADER_SIZE, VERSION, Avp, Header, Message, encode_avp
from .validate import zero_fill

__all__ = ["AnswerTemplate", "LocalNode", "error_answer", "make_answer"]


@dataclass(frozen=True, slots=True)
class LocalNode:
    """Who we are on the wire: Origin-Host and Origin-Realm, pre-built once (§6.3, §6.4)."""

    host: str
    realm: str
    origin_state_id: int | None = None
    origin_avps: tuple[Avp, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        avps = [Avp.new(base.ORIGIN_HOST, self.host), Avp.new(base.ORIGIN_REALM, self.realm)]
        object.__setattr__(self, "origin_avps", tuple(avps))


def make_answer(request: Message, avps: Iterable[Avp], *, error: bool = False) -> Message:
    """An answer to ``request`` holding ``avps`` (which must not include Session-Id or Proxy-Info).

    §6.2: copies Hop-by-Hop, End-to-End and the P bit; Session-Id first; Proxy-Info copied in order.
    """
    session = request.find(base.SESSION_ID)
    out: list[Avp] = [session] if session is not None else []
    out.extend(avps)
    out.extend(request.find_all(base.PROXY_INFO))
    flags = (request.flags & FLAG_PROXIABLE) | (FLAG_ERROR if error else 0)
    return Message(request.command, request.application, flags, request.hop_by_hop, request.end_to_end, out)


def error_answer(
    err: ProtocolError,
    node: LocalNode,
    dictionary: Dictionary,
    request: Message | None = None,
    command: CommandDef | None = None,
) -> Message:
    """The answer to a request that failed with ``err``.

    ``request`` is the decoded request when decoding got that far (its Session-Id, Proxy-Info and
    Auth-Session-State are copied); otherwise the answer is built from ``err.header`` alone.
    3xxx answers use §7.2's answer-message with the E bit; 5xxx answers use the command's own answer
    format when the command is known (§7.1.5), with the AVPs that format requires.
    """
    header: Header | None = err.header if request is None else request.header
    if header is None:
        raise ValueError("an error answer needs at least the request header")
    if request is None:
        request = Message(header.command, header.application, header.flags, header.hop_by_hop, header.end_to_end)
    if command is None:
        command = dictionary.command(header.application, header.command)
    protocol = err.is_protocol_error or command is None
    avps: list[Avp] = []
    if not protocol and command is not None:
        # Required AVPs of the command's answer that we can fill from the request (e.g. ECA's
        # {Auth-Session-State}, 29.272 §7.2.20).
        for rule in command.answer.rules:
            if rule.min and rule.avp is base.AUTH_SESSION_STATE:
                state = request.find(base.AUTH_SESSION_STATE)
                valid = state is not None and len(state.data) == 4 and int.from_bytes(state.data, "big") in (
                    base.AUTH_SESSION_STATE.enum_values or {})
                # Copy the request's value, unless it is the malformed AVP this error is about.
                avps.append(state if valid and state is not None else Avp.new(
                    base.AUTH_SESSION_STATE, base.AuthSessionState.NO_STATE_MAINTAINED))
    avps.extend(node.origin_avps)
    avps.append(Avp.new(base.RESULT_CODE, err.result_code))
    avps.append(Avp.new(base.ERROR_MESSAGE, err.message[:200]))
    if err.failed_avp is not None:
        avps.append(Avp.new(base.FAILED_AVP, [zero_fill(err.failed_avp, dictionary)]))
    return make_answer(request, avps, error=protocol)


_SID = base.SESSION_ID
_SESSION_ID = base.SESSION_ID.code
_PROXY_INFO = base.PROXY_INFO.code


@dataclass(frozen=True, slots=True)
class AnswerTemplate:
    """An answer whose AVPs after Session-Id are the same every time, encoded once (§6.2).

    ``render(request)`` copies the request's Hop-by-Hop, End-to-End, P bit, Session-Id (first) and
    Proxy-Info AVPs (in order, last) around the pre-encoded ``avps``: the bytes equal
    ``encode_message(make_answer(request, avps))`` at a fraction of the cost. Used for the answers
    an application sends most (an ECA per Equipment-Status).
    """

    avps: tuple[Avp, ...]
    error: bool = False
    _tail: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tail", b"".join(encode_avp(a) for a in self.avps))

    def render(self, request: Message) -> bytes:
        avps = request.avps
        session = avps[0] if avps and avps[0].code == _SESSION_ID and not avps[0].vendor else request.find(_SID)
        body = self._tail if session is None else encode_avp(session) + self._tail
        proxies = [a for a in avps if a.code == _PROXY_INFO and not a.vendor]
        if proxies:
            body += b"".join(encode_avp(a) for a in proxies)
        flags = (request.flags & FLAG_PROXIABLE) | (FLAG_ERROR if self.error else 0)
        return _HEADER.pack(
            (VERSION << 24) | (HEADER_SIZE + len(body)), (flags << 24) | request.command,
            request.application, request.hop_by_hop, request.end_to_end,
        ) + body
