"""What the loop would do next, and why: the same rules a search follows, said for an outside coding agent
(``python -m pytest_autofl next``) that proposes by writing candidate files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_autofl.control.plateau import watch
from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.verdict import CRASH, INVALID
from pytest_autofl.ledger.row import Row
from pytest_autofl.literature.cards import Card
from pytest_autofl.literature.review import review
from pytest_autofl.proposers.base import tried_keys
from pytest_autofl.search.literature import LiteratureLoop

MAX_FAILURES_IN_A_ROW = 6  # crash or invalid rows in a row: something is broken, proposing more wastes runs


@dataclass(frozen=True)
class Advice:
    action: str  # baseline | stop | linked | literature | propose
    reason: str
    command: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        return [f"next: {self.action}", f"why: {self.reason}", f"do: {self.command}"] + [
            f"{k}: {v}" for k, v in self.details.items()
        ]


def _failures_in_a_row(rows: Sequence[Row]) -> int:
    count = 0
    for row in reversed([r for r in rows if not r.is_literature]):
        if row.status not in (CRASH, INVALID):
            break
        count += 1
    return count


def advise(
    rows: Sequence[Row],
    contract: Contract,
    factory: CandidateFactory,
    surface_dir: Path,
    cards: Sequence[Card],
    after: int,
) -> Advice:
    """The next step for one campaign's rows (oldest first)."""
    bench = f"--autofl-benchmark {contract.name}"
    if not any(r.is_keep for r in rows):
        return Advice("baseline", "the campaign has no baseline yet", f"pytest {bench} --autofl-iterations=1")
    if (failed := _failures_in_a_row(rows)) >= MAX_FAILURES_IN_A_ROW:
        return Advice(
            "stop",
            f"{failed} crash or invalid rows in a row: read their reasons and fix the cause before proposing more",
            "python -m pytest_autofl report results.tsv",
        )
    surface = {name: (surface_dir / name).read_text() for name in factory.schema.files}
    loop = LiteratureLoop(cards, contract, factory, surface_dir, surface, after, lambda *_: False, print)
    plateau = watch(rows, after)
    details: dict[str, Any] = {
        "incumbent": next(r.candidate_id for r in reversed(rows) if r.is_keep),
        "plateau": plateau.reason,
        "repeated_terms": ",".join(f"{t}:{n}" for t, n in plateau.repeated_terms),
    }
    linked = loop.pending(rows, tried_keys(rows))
    if linked is not None:
        return Advice(
            "linked",
            f"the literature review {linked.event} has runs left; {linked.id} is next",
            f"pytest {bench} --autofl-iterations=1",
            details | {"candidate": linked.description},
        )
    if plateau.reached:
        found = review(cards, rows, contract, factory, surface_dir, surface, plateau.reset_index)
        if found.batch:
            return Advice(
                "literature",
                plateau.reason,
                f"pytest {bench} --autofl-iterations=3",
                details | {"card": found.card.id, "score": found.ranked[0].line(), "event": found.event},
            )
        details["literature"] = "no card left to run: " + "; ".join(f"{c}: {w}" for c, w in found.dropped)
    return Advice(
        "propose",
        "no literature batch is pending; the next idea is the proposer's (or yours, as a candidate file)",
        f"pytest {bench} --autofl-iterations=1, or write candidates/<name>.yaml and run pytest candidates/",
        details,
    )
