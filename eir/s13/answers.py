"""The ECAs the EIR sends, pre-encoded once per node (TS 29.272 §7.2.20, RFC 6733 §6.2, §7.2).

One :class:`AnswerTemplate` per outcome: each answer copies the request's identifiers, P bit,
Session-Id and Proxy-Info around constant AVPs, so answering costs a few hundred nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.diameter import Avp, LocalNode
from protocols.diameter import base_rfc6733 as base
from protocols.diameter import s13_ts29272 as s13
from protocols.diameter.answers import AnswerTemplate

__all__ = ["EcaTemplates"]

_NO_STATE = base.AuthSessionState.NO_STATE_MAINTAINED


@dataclass(frozen=True, slots=True)
class EcaTemplates:
    """Every ECA shape the front end answers with, for one Origin-Host/Realm."""

    node: LocalNode
    by_status: dict[int, AnswerTemplate] = field(init=False)
    unknown: AnswerTemplate = field(init=False)
    unable_to_comply: AnswerTemplate = field(init=False)
    too_busy: AnswerTemplate = field(init=False)

    def __post_init__(self) -> None:
        state = Avp.new(base.AUTH_SESSION_STATE, _NO_STATE)
        origin = self.node.origin_avps
        success = Avp.new(base.RESULT_CODE, base.ResultCode.DIAMETER_SUCCESS)
        # §7.2.20 order: [Result-Code] [Experimental-Result] {Auth-Session-State} {Origin-*} [Equipment-Status]
        by_status = {
            int(st): AnswerTemplate((success, state, *origin, Avp.new(s13.EQUIPMENT_STATUS, st)))
            for st in s13.EquipmentStatus
        }
        unknown = AnswerTemplate((
            Avp.new(base.EXPERIMENTAL_RESULT, [
                Avp.new(base.VENDOR_ID, s13.VENDOR_3GPP),
                Avp.new(base.EXPERIMENTAL_RESULT_CODE, s13.ExperimentalResultCode.DIAMETER_ERROR_EQUIPMENT_UNKNOWN),
            ]),
            state, *origin,
        ))
        # RFC 6733 §7.1.5: 5012, permanent failure, E bit clear, the command's own answer format.
        unable = AnswerTemplate((
            Avp.new(base.RESULT_CODE, base.ResultCode.DIAMETER_UNABLE_TO_COMPLY), state, *origin,
            Avp.new(base.ERROR_MESSAGE, "equipment register unavailable"),
        ))
        # §7.1.3: 3004 is a protocol error: E bit, the generic answer-message (§7.2).
        busy = AnswerTemplate((*origin, Avp.new(base.RESULT_CODE, base.ResultCode.DIAMETER_TOO_BUSY)), error=True)
        object.__setattr__(self, "by_status", by_status)
        object.__setattr__(self, "unknown", unknown)
        object.__setattr__(self, "unable_to_comply", unable)
        object.__setattr__(self, "too_busy", busy)
