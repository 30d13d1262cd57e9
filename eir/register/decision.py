"""Requests to and decisions of the equipment register (protocol-independent; TS 29.272 §6.2.1.1,
TS 29.002 CHECK_IMEI and TS 29.511 N5g-eir all map onto these).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from eir.identity import Imei
from eir.register.model import Entry, Granularity, Reason, Status

__all__ = ["CheckRequest", "Decision", "Outcome", "Verdict"]


class Outcome(enum.StrEnum):
    """What happened, for answers and counters (modelled on the WHITE/GRAY/BLACK/BLKAL/UNKN counters)."""

    WHITE = "white"
    GREY = "grey"
    BLACK = "black"
    BLACK_ALLOWED_BY_PAIRING = "black-allowed-by-pairing"
    UNKNOWN = "unknown"
    STORE_UNAVAILABLE = "store-unavailable"


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """One IMEI check: the equipment, the subscriber's IMSI if sent, the SVN if sent, who asked."""

    imei: Imei
    imsi: str | None = None
    svn: str | None = None
    requester: str | None = None

    @property
    def software_version(self) -> str | None:
        """The SVN from the request, else from an IMEISV."""
        return self.svn if self.svn is not None else self.imei.svn


class Verdict(NamedTuple):
    """What a protocol front end answers with: the outcome and the Equipment-Status to send (None: unknown
    equipment, or the store unavailable). The part of a :class:`Decision` that goes on the wire; an EIR's
    hot path asks for verdicts (``EquipmentChecker.verdict_cached``), which a plain IMEI entry gives without
    any entry or decision object being built."""

    outcome: Outcome
    status: Status | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The register's answer.

    ``status`` is the Equipment-Status to send (None = unknown equipment, e.g. answer 5422);
    ``entry`` is the entry that decided (None for the default or on failure); ``matched`` says at
    which precedence level; ``reason`` is the deciding entry's reason; ``overrides`` is the entry a
    pairing overrode (BLACK_ALLOWED_BY_PAIRING); ``note`` is an explanation given by whoever decided
    (a failure, an unmappable MEID). :attr:`detail` puts it in words only when asked, so the hot path
    of an EIR never formats text it does not send.
    """

    outcome: Outcome
    status: Status | None
    entry: Entry | None = None
    matched: Granularity | None = None
    reason: Reason | None = None
    note: str = ""
    overrides: Entry | None = None

    @property
    def available(self) -> bool:
        return self.outcome is not Outcome.STORE_UNAVAILABLE

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.outcome, self.status)

    @property
    def detail(self) -> str:
        """The decision explained in words (for the CLI, the admin API and audit)."""
        if self.note:
            return self.note
        if self.entry is not None:
            if self.overrides is not None:
                return f"{self.entry.describe()}; overrides {self.overrides.describe()}"
            return self.entry.describe()
        if self.matched is Granularity.DEFAULT and self.status is not None:
            return f"no entry matches: default status {self.status.name.lower()}"
        if self.outcome is Outcome.UNKNOWN:
            return "no entry matches: unknown equipment"
        return ""
