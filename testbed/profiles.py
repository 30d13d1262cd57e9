"""MME policy profiles as data: what a real MME does with each ECA (TS 23.401 §5.3.2.1 step 5b, TS 24.301).

Sources: ../shared/reference/peer-behaviours.md (Open5GS S13 PRs, OsmoMSC check-imei-rqd, Magma,
VectorCore). Emergency attach is never refused because of the check (TS 22.016 §6, TS 23.401
§5.3.2.1: "the MME may ... continue the attach procedure for emergency bearer services").

=============  =============  =========  =======================  ============  ============  ===
profile        blacklisted    grey       5422 unknown             error/timeout  IMEI digits   TAU
=============  =============  =========  =======================  ============  ============  ===
open5gs        #6 Illegal ME  accept     #42 (S6a error table)    #42            14            no
osmocom        #6 Illegal ME  accept     #6 (NACK = ILLEGAL_ME)   #6             14            no
magma          #5 IMEI n.a.   accept     accept                   #17            14            no
vectorcore     #5 IMEI n.a.   accept     #17 (non-2001 failure)   #17            15 (Luhn)     yes
=============  =============  =========  =======================  ============  ============  ===
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from testbed.eca import EirAnswer
from testbed.emm import EmmCause

__all__ = ["PROFILES", "MmeOutcome", "Procedure", "Profile", "profile_from_mapping"]


class Procedure(enum.StrEnum):
    """The procedures a simulated MME runs (TS 23.401 §5.3.2.1 attach, §5.3.3 TAU)."""

    ATTACH = "attach"
    TAU = "tau"
    EMERGENCY = "emergency"


@dataclass(frozen=True, slots=True)
class MmeOutcome:
    """Attach/TAU Accept, or Reject with an EMM cause."""

    accepted: bool
    cause: EmmCause | None = None

    def __str__(self) -> str:
        return "accept" if self.accepted else f"reject {self.cause.label if self.cause else '?'}"


ACCEPT = MmeOutcome(True)


def _reject(cause: EmmCause | None) -> MmeOutcome:
    return ACCEPT if cause is None else MmeOutcome(False, cause)


@dataclass(frozen=True, slots=True)
class Profile:
    """One MME's policy. A ``*_cause`` of None means "accept"."""

    name: str
    black_cause: EmmCause
    grey_cause: EmmCause | None = None
    unknown_cause: EmmCause | None = None
    invalid_cause: EmmCause | None = None
    error_cause: EmmCause | None = EmmCause.NETWORK_FAILURE
    imei_digits: int = 14
    check_on_tau: bool = False
    check_on_emergency: bool = False

    def __post_init__(self) -> None:
        if self.imei_digits not in (14, 15):
            raise ValueError(f"imei_digits: {self.imei_digits} must be 14 or 15")

    def sends_check(self, procedure: Procedure) -> bool:
        """Whether this procedure sends an ECR at all."""
        if procedure is Procedure.TAU:
            return self.check_on_tau
        if procedure is Procedure.EMERGENCY:
            return self.check_on_emergency
        return True

    def outcome(self, answer: EirAnswer | None, procedure: Procedure = Procedure.ATTACH) -> MmeOutcome:
        """The MME's decision given the EIR's answer (None: no check was made)."""
        if procedure is Procedure.EMERGENCY or answer is None:
            return ACCEPT  # TS 22.016: never refused because of the IMEI check
        if answer is EirAnswer.WHITE:
            return ACCEPT
        if answer is EirAnswer.BLACK:
            return MmeOutcome(False, self.black_cause)
        if answer is EirAnswer.GREY:
            return _reject(self.grey_cause)
        if answer is EirAnswer.UNKNOWN:
            return _reject(self.unknown_cause)
        if answer is EirAnswer.INVALID:
            return _reject(self.invalid_cause)
        return _reject(self.error_cause)


PROFILES: dict[str, Profile] = {
    "open5gs": Profile("open5gs", EmmCause.ILLEGAL_ME, unknown_cause=EmmCause.SEVERE_NETWORK_FAILURE,
                       invalid_cause=EmmCause.SEVERE_NETWORK_FAILURE, error_cause=EmmCause.SEVERE_NETWORK_FAILURE),
    "osmocom": Profile("osmocom", EmmCause.ILLEGAL_ME, unknown_cause=EmmCause.ILLEGAL_ME,
                       invalid_cause=EmmCause.ILLEGAL_ME, error_cause=EmmCause.ILLEGAL_ME),
    "magma": Profile("magma", EmmCause.IMEI_NOT_ACCEPTED, invalid_cause=EmmCause.NETWORK_FAILURE),
    "vectorcore": Profile("vectorcore", EmmCause.IMEI_NOT_ACCEPTED, unknown_cause=EmmCause.NETWORK_FAILURE,
                          invalid_cause=EmmCause.NETWORK_FAILURE, imei_digits=15, check_on_tau=True),
}
PROFILES["custom"] = replace(PROFILES["open5gs"], name="custom")

_CAUSE_KEYS = {"black": "black_cause", "grey": "grey_cause", "unknown": "unknown_cause",
               "invalid": "invalid_cause", "error": "error_cause"}
_BOOL_KEYS = ("check_on_tau", "check_on_emergency")


def profile_from_mapping(base_name: str, overrides: Mapping[str, object], where: str = "policy") -> Profile:
    """A profile ``base_name`` with YAML overrides: ``black``/``grey``/``unknown``/``invalid``/``error``
    take ``accept`` or an EMM cause (number or name); ``imei_digits`` 14 or 15; ``check_on_tau`` and
    ``check_on_emergency`` booleans. Raises ValueError naming the key and the reason."""
    if base_name not in PROFILES:
        raise ValueError(f"{where}.profile: {base_name!r} is not one of {', '.join(PROFILES)}")
    changes: dict[str, object] = {}
    known = {*_CAUSE_KEYS, *_BOOL_KEYS, "imei_digits"}
    for key, value in overrides.items():
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (expected one of {', '.join(sorted(known))})")
        if key in _CAUSE_KEYS:
            if value == "accept" or value is None:
                if key == "black":
                    raise ValueError(f"{where}.black: a blacklisted device must be rejected with a cause")
                changes[_CAUSE_KEYS[key]] = None
            else:
                try:
                    changes[_CAUSE_KEYS[key]] = EmmCause.parse(value)
                except ValueError as e:
                    raise ValueError(f"{where}.{key}: {e}") from None
        elif key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise ValueError(f"{where}.{key}: expected true or false, got {value!r}")
            changes[key] = value
        else:
            if value not in (14, 15):
                raise ValueError(f"{where}.imei_digits: {value!r} must be 14 or 15")
            changes[key] = value
    assert {f.name for f in fields(Profile)} >= set(changes)
    return replace(PROFILES[base_name], **changes)  # type: ignore[arg-type]
