"""The decision: explicit precedence over the list levels (issue 4 "Precedence is explicit").

For a request (IMEI key, optional IMSI, optional SVN) the first level that has a live (unexpired)
entry decides:

1. IMEI+IMSI pairing entry for this IMEI and the request's IMSI (only if the request carries an IMSI);
2. IMEI entry;
3. the narrowest IMEI range containing the IMEI;
4. a TAC+SVN rule for the IMEI's TAC whose SVN set holds the request's SVN;
5. TAC entry;
6. the configured default for unknown equipment: a status, or None ("unknown", e.g. S13 5422).

A pairing that is not black for an IMEI that the levels 2-5 would blacklist gives the outcome
BLACK_ALLOWED_BY_PAIRING (Oracle EIR's "BLKAL" counter). Entries are found by dict lookup and bisect,
never by scanning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eir.register.decision import Decision, Outcome, Verdict
from eir.register.model import Entry, Granularity, Status
from eir.register.rules import RuleIndex

__all__ = ["PLAIN_VERDICTS", "UNAVAILABLE", "Policy", "decide", "unavailable"]

_OUTCOME = {Status.WHITE: Outcome.WHITE, Status.GREY: Outcome.GREY, Status.BLACK: Outcome.BLACK}
_UNKNOWN = Decision(Outcome.UNKNOWN, None)
#: The verdict when an IMEI's only entry is a plain IMEI entry without expiry: level 2 decides, whatever the
#: IMSI, the SVN or the rules (no pairing exists, and level 2 comes before every rule).
PLAIN_VERDICTS = {st: Verdict(_OUTCOME[st], st) for st in Status}
UNAVAILABLE = Verdict(Outcome.STORE_UNAVAILABLE, None)
_UNKNOWN_VERDICT = Verdict(Outcome.UNKNOWN, None)


@dataclass(frozen=True, slots=True)
class Policy:
    """Configuration of the decision: ``unknown_status`` None answers "unknown equipment"."""

    unknown_status: Status | None = None

    @property
    def unknown_decision(self) -> Decision:
        """The decision for equipment no entry matches: "unknown", or the default status."""
        st = self.unknown_status
        if st is None:
            return _UNKNOWN
        return Decision(_OUTCOME[st], st, None, Granularity.DEFAULT)

    @property
    def unknown_verdict(self) -> Verdict:
        """:attr:`unknown_decision`'s verdict, without building it (a front end's hot path)."""
        st = self.unknown_status
        return _UNKNOWN_VERDICT if st is None else PLAIN_VERDICTS[st]


def _from(entry: Entry) -> Decision:
    return Decision(_OUTCOME[entry.status], entry.status, entry, entry.granularity, entry.reason)


def _without_pairing(key: str, tac: str, svn: str | None, plain: Entry | None, rules: RuleIndex,
                     now: float) -> Entry | None:
    if plain is not None:
        return plain
    r = rules.range_for(int(key))
    if r is not None and not r.expired(now):
        return r
    r = rules.svn_rule(tac, svn)
    if r is not None and not r.expired(now):
        return r
    r = rules.tac(tac)
    if r is not None and not r.expired(now):
        return r
    return None


def decide(key: str, imsi: str | None, svn: str | None, imei_entries: Sequence[Entry], rules: RuleIndex,
           policy: Policy, now: float) -> Decision:
    """Decide for one IMEI key given its IMEI-level entries (from the store) and the rule index."""
    plain: Entry | None = None
    pair: Entry | None = None
    for e in imei_entries:
        if e.expires is not None and e.expires <= now:
            continue
        if e.imsi is None:
            plain = e
        elif imsi is not None and e.imsi == imsi:
            pair = e
    base = _without_pairing(key, key[:8], svn, plain, rules, now)
    if pair is not None:
        if pair.status is not Status.BLACK and base is not None and base.status is Status.BLACK:
            return Decision(Outcome.BLACK_ALLOWED_BY_PAIRING, pair.status, pair, Granularity.IMEI_IMSI,
                            pair.reason, overrides=base)
        return _from(pair)
    if base is not None:
        return _from(base)
    return policy.unknown_decision


def unavailable(detail: str) -> Decision:
    """The decision when the store cannot be reached (the front end applies its fail policy)."""
    return Decision(Outcome.STORE_UNAVAILABLE, None, note=detail)
