"""EMM causes as data (TS 24.301 §9.9.3.9, Annex A): what an MME puts in Attach/TAU Reject.

Only the causes an MME uses after the ME identity check (TS 23.401 §5.3.2.1 step 5b) and after a
failed or absent EIR answer are listed; the values are the octet sent on the air interface.
"""

from __future__ import annotations

import enum

__all__ = ["EmmCause"]


class EmmCause(enum.IntEnum):
    """EMM cause values (TS 24.301 §9.9.3.9, Table 9.9.3.9.1)."""

    IMSI_UNKNOWN_IN_HSS = 2
    ILLEGAL_UE = 3
    #: #5 "IMEI not accepted": VectorCore and Magma use it for a blacklisted device (Annex A.2).
    IMEI_NOT_ACCEPTED = 5
    #: #6 "Illegal ME": Open5GS and Osmocom use it for a blacklisted device (Annex A.2).
    ILLEGAL_ME = 6
    EPS_SERVICES_NOT_ALLOWED = 7
    PLMN_NOT_ALLOWED = 11
    TRACKING_AREA_NOT_ALLOWED = 12
    #: #17 "Network failure" (Annex A.4): the usual cause when the EIR does not answer.
    NETWORK_FAILURE = 17
    CONGESTION = 22
    #: #42 "Severe network failure": Open5GS maps S13 errors (incl. 5422) through its S6a table to it.
    SEVERE_NETWORK_FAILURE = 42

    @property
    def label(self) -> str:
        """``#6 Illegal ME`` style text for tables (TS 24.301 Annex A wording)."""
        return f"#{int(self)} {_LABELS[self]}"

    @classmethod
    def parse(cls, value: object) -> EmmCause:
        """A cause from its number (6, "6", "#6") or its name ("illegal_me", "ILLEGAL-ME")."""
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        text = str(value).strip().lstrip("#")
        if text.isdigit():
            return cls(int(text))
        try:
            return cls[text.upper().replace("-", "_").replace(" ", "_")]
        except KeyError:
            names = ", ".join(c.name.lower() for c in cls)
            raise ValueError(f"{value!r} is not an EMM cause (TS 24.301 §9.9.3.9): one of {names}") from None


_LABELS = {
    EmmCause.IMSI_UNKNOWN_IN_HSS: "IMSI unknown in HSS", EmmCause.ILLEGAL_UE: "Illegal UE",
    EmmCause.IMEI_NOT_ACCEPTED: "IMEI not accepted", EmmCause.ILLEGAL_ME: "Illegal ME",
    EmmCause.EPS_SERVICES_NOT_ALLOWED: "EPS services not allowed", EmmCause.PLMN_NOT_ALLOWED: "PLMN not allowed",
    EmmCause.TRACKING_AREA_NOT_ALLOWED: "Tracking area not allowed", EmmCause.NETWORK_FAILURE: "Network failure",
    EmmCause.CONGESTION: "Congestion", EmmCause.SEVERE_NETWORK_FAILURE: "Severe network failure",
}
