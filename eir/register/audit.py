"""Audit trail records: every decision can be recorded (IMEI, IMSI, SVN, who asked, decision, matched
entry, time) and exported (issue 4 "Every decision can be recorded in an audit trail").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from eir.register.decision import CheckRequest, Decision

__all__ = ["AUDIT_FIELDS", "AuditRecord"]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recorded decision; every field is text so it maps onto a Redis stream entry or a CSV row."""

    time: str
    imei: str
    imsi: str
    svn: str
    requester: str
    outcome: str
    status: str
    matched: str
    entry: str
    reporter: str

    @classmethod
    def of(cls, request: CheckRequest, decision: Decision, now: float | None = None) -> AuditRecord:
        t = time.time() if now is None else now
        e = decision.entry
        return cls(
            time=f"{t:.3f}",
            imei=request.imei.key,
            imsi=request.imsi or "",
            svn=request.software_version or "",
            requester=request.requester or "",
            outcome=decision.outcome.value,
            status="" if decision.status is None else decision.status.name.lower(),
            matched=decision.matched.value if decision.matched else "",
            entry=e.ident if e else "",
            reporter=e.reporter if e else "",
        )

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> AuditRecord:
        return cls(**{k: d.get(k, "") for k in AUDIT_FIELDS})


AUDIT_FIELDS = ("time", "imei", "imsi", "svn", "requester", "outcome", "status", "matched", "entry", "reporter")
