"""The plateau watchdog: how many scored candidates ran since the incumbent last changed (a confirmed keep) or
since the last literature review, whichever is later; at ``after`` of them the loop turns to the literature.

Crash, invalid and literature rows do not count: a plateau is about ideas that ran and did not win. The
``key=value`` lines are the reference Auto-FL watchdog's, so agents written for it can read ours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_autofl.core.candidate import changed_knobs
from pytest_autofl.core.verdict import DISCARD, KEEP, NARROW, SCREENED
from pytest_autofl.ledger.row import Row

SCORED = (KEEP, NARROW, DISCARD, SCREENED)  # judged candidates (a screened one on its screen)
MAX_TERMS = 6


@dataclass(frozen=True)
class Plateau:
    recommendation: str  # literature | continue
    reason: str
    scored_since_reset: int
    threshold: int
    reset_source: str  # start | keep | literature
    reset_index: int  # 1-based row of the campaign that reset the count (0: none)
    best_index: int
    best_score: float | None
    last_literature_index: int
    repeated_terms: tuple[tuple[str, int], ...]

    @property
    def reached(self) -> bool:
        return self.recommendation == "literature"

    def lines(self) -> list[str]:
        best = "" if self.best_score is None else f"{self.best_score:.6f}"
        terms = ",".join(f"{t}:{n}" for t, n in self.repeated_terms)
        return [
            f"recommendation={self.recommendation}",
            f"reason={self.reason}",
            f"scored_since_reset={self.scored_since_reset}",
            f"threshold={self.threshold}",
            f"reset_source={self.reset_source}",
            f"reset_index={self.reset_index}",
            f"best_index={self.best_index}",
            f"best_score={best}",
            f"last_literature_index={self.last_literature_index}",
            f"repeated_terms={terms}",
        ]


def repeated_terms(rows: Sequence[Row]) -> tuple[tuple[str, int], ...]:
    """Knob settings (``name=value``, as changed from the baseline) that candidates tried at least twice."""
    baseline = next((r for r in rows if r.is_keep), None)
    if baseline is None:
        return ()
    counts: Counter[str] = Counter()
    for row in rows:
        if row.params and row is not baseline:
            counts.update(f"{k}={row.params[k]}" for k in changed_knobs(row.params, baseline.params))
    return tuple((t, n) for t, n in counts.most_common() if n >= 2)[:MAX_TERMS]


def watch(rows: Sequence[Row], after: int) -> Plateau:
    """The watchdog over one campaign's rows (oldest first)."""
    keeps = [i for i, r in enumerate(rows, 1) if r.is_keep]
    reviews = [i for i, r in enumerate(rows, 1) if r.is_literature]
    last_keep, last_review = (keeps[-1] if keeps else 0), (reviews[-1] if reviews else 0)
    reset = max(last_keep, last_review)
    source = "start" if not reset else ("literature" if reset == last_review else "keep")
    scored = sum(1 for r in rows[reset:] if r.status in SCORED)
    best = rows[last_keep - 1] if last_keep else None
    if not keeps:
        recommendation, reason = "continue", "no baseline yet"
    elif scored >= after:
        recommendation = "literature"
        reason = f"{scored} scored candidates since the last {source} without a new keep (threshold {after})"
    else:
        recommendation = "continue"
        reason = f"{scored} of {after} scored candidates since the last {source}"
    return Plateau(
        recommendation,
        reason,
        scored,
        after,
        source,
        reset,
        last_keep,
        best.score if best else None,
        last_review,
        repeated_terms(rows),
    )
