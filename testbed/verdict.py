"""The verdict: every procedure's expected outcome (from the scenario) against the observed one.

A record is *wrong* when the MME's decision differs from the expected one (wrongly accepted,
wrongly rejected, wrong EMM cause), when the EIR's answer differs from the expected one even though
the MME decided the same (wrong status: e.g. grey answered white), or when the EIR failed (error)
or did not answer (timeout). A run with any wrong record fails (non-zero exit).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from testbed.eca import EirAnswer
from testbed.profiles import MmeOutcome

__all__ = ["KINDS", "Verdict", "judge"]

#: Columns of the verdict table, in display order; "ok" first.
KINDS = ("ok", "wrongly_accepted", "wrongly_rejected", "wrong_cause", "wrong_status", "error", "timeout")


def judge(expected_answer: EirAnswer | None, expected: MmeOutcome, observed_answer: EirAnswer | None,
          observed: MmeOutcome) -> str:
    """The verdict kind of one procedure (one of :data:`KINDS`)."""
    if observed_answer is not None and observed_answer.is_failure and observed_answer != expected_answer:
        return "timeout" if observed_answer in (EirAnswer.TIMEOUT, EirAnswer.CLOSED) else "error"
    if expected.accepted and not observed.accepted:
        return "wrongly_rejected"
    if not expected.accepted and observed.accepted:
        return "wrongly_accepted"
    if expected.cause != observed.cause:
        return "wrong_cause"
    if expected_answer != observed_answer:
        return "wrong_status"
    return "ok"


@dataclass
class Verdict:
    """Counts by category and kind, plus the first few wrong records as examples."""

    table: dict[str, Counter[str]] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    max_examples: int = 50

    def add(self, category: str, kind: str, example: dict[str, Any] | None = None, *, answer: str = "",
            outcome: str = "") -> None:
        row = self.table.get(category)
        if row is None:
            row = self.table[category] = Counter()
        row[kind] += 1
        if answer:
            self.answers[answer] += 1
        if outcome:
            self.outcomes[outcome] += 1
        if kind != "ok" and example is not None and len(self.examples) < self.max_examples:
            self.examples.append(example)

    def totals(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for row in self.table.values():
            out.update(row)
        return out

    @property
    def wrong(self) -> int:
        t = self.totals()
        return sum(n for k, n in t.items() if k != "ok")

    @property
    def passed(self) -> bool:
        return self.wrong == 0 and bool(self.table)

    def rows(self) -> list[dict[str, Any]]:
        """One row per category (sorted) and a TOTAL row: total and every kind."""
        out = []
        for cat in sorted(self.table):
            row = self.table[cat]
            out.append({"category": cat, "total": sum(row.values()), **{k: row.get(k, 0) for k in KINDS}})
        t = self.totals()
        out.append({"category": "TOTAL", "total": sum(t.values()), **{k: t.get(k, 0) for k in KINDS}})
        return out

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "wrong": self.wrong, "rows": self.rows(), "answers": dict(self.answers),
                "outcomes": dict(self.outcomes), "examples": self.examples}
