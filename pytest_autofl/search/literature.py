"""The literature loop inside a search, for whichever proposer runs: a pending linked run of the latest review
comes first; on a plateau a review is recorded (its ``literature`` row before any of its runs) and its batch
starts. Everything is derived from the ledger's rows, so a resumed or parallel campaign picks up the batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from pytest_autofl.control.plateau import Plateau, watch
from pytest_autofl.control.program import Program
from pytest_autofl.core.candidate import Candidate, CandidateFactory
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.errors import ProposalRejected
from pytest_autofl.core.progress import Progress
from pytest_autofl.data.split import Shards
from pytest_autofl.ledger.row import Row
from pytest_autofl.literature.cards import RUNS, Card, load_cards, verified
from pytest_autofl.literature.review import SOURCE, Review, review, worksheet
from pytest_autofl.proposers.base import Assignment, CampaignView, Proposer
from pytest_autofl.search.coordination import Coordination
from pytest_autofl.search.record import Provenance
from pytest_autofl.search.state import CampaignState


@dataclass
class LiteratureLoop:
    cards: Sequence[Card]
    contract: Contract
    factory: CandidateFactory
    surface_dir: Path
    surface: dict[str, str]
    after: int  # the plateau rule
    record: Callable[[Review, Plateau], bool]  # writes the event row; False if another worker wrote it first
    progress: Progress
    _told: bool = False

    def pending(self, rows: Sequence[Row], tried: set[str]) -> Candidate | None:
        """The latest review's first linked run not yet tried."""
        event = next((r for r in reversed(rows) if r.is_literature), None)
        card = next((c for c in self.cards if event and event.source == SOURCE + c.id), None)
        if event is None or card is None:
            return None
        for run in RUNS:
            candidate = card.candidate(run, self.factory, self.surface_dir, self.surface, event.event)
            if candidate.key not in tried:
                return candidate
        return None

    def assignment(self, rows: Sequence[Row]) -> Assignment | None:
        """The latest review's next run, for a proposer that implements cards: one per linked row so far."""
        event = next((r for r in reversed(rows) if r.is_literature), None)
        card = next((c for c in self.cards if event and event.source == SOURCE + c.id), None)
        if event is None or card is None:
            return None
        done = sum(1 for r in rows if r.event == event.event and not r.is_literature)
        if done >= len(RUNS):
            return None
        brief = f"Literature review {event.event}: {event.description}. Trigger: {event.reason}.\n"
        return Assignment(event.event, RUNS[done], brief + card.brief(RUNS[done]))

    def propose(self, view: CampaignView, proposer: Proposer) -> Candidate:
        """The next candidate after the baseline: a review's linked run (the card's own, or the proposer's
        implementation when it implements cards), else the proposer's own idea. A model's citations that
        match no card are marked unverified."""
        own = bool(getattr(proposer, "implements_cards", False))
        step = self.next(view.history, view.tried(), own)
        if isinstance(step, Candidate):
            return step
        try:
            candidate = proposer.propose(replace(view, assignment=step))
        except ProposalRejected as exc:  # its invalid row still counts as the review's run
            if step is not None and isinstance(exc.candidate, Candidate):
                exc.candidate = replace(exc.candidate, event=step.event)
            raise
        candidate = verified(candidate, list(self.cards))
        return replace(candidate, event=step.event) if step is not None else candidate

    def next(self, rows: Sequence[Row], tried: set[str], own: bool = False) -> Candidate | Assignment | None:
        """A linked candidate (or, with ``own``, an assignment), or None: the proposer's turn."""
        linked = self.assignment(rows) if own else self.pending(rows, tried)
        if linked is not None:
            return linked
        plateau = watch(rows, self.after)
        if not plateau.reached:
            return None
        found = review(
            self.cards, rows, self.contract, self.factory, self.surface_dir, self.surface, plateau.reset_index
        )
        if not found.batch:
            if not self._told:
                why = "; ".join(f"{c}: {w}" for c, w in found.dropped) or "the card library is empty"
                self.progress(f"[autofl] plateau ({plateau.reason}), but no card is left to run ({why})")
                self._told = True
            return None
        if not self.record(found, plateau):
            return None  # another worker reviewed first: its batch is pending at the next call
        if own:
            brief = f"Literature review {found.event}: symptoms {list(found.symptoms)}; {plateau.reason}.\n"
            return Assignment(found.event, RUNS[0], brief + found.card.brief(RUNS[0]))
        return next((c for c in found.batch if c.key not in tried), None)


class Host(Protocol):
    """What the loop needs of the search it runs in."""

    contract: Contract
    factory: CandidateFactory
    surface_dir: Path
    surface: dict[str, str]
    run_dir: Path
    provenance: Provenance
    coordination: Coordination
    state: CampaignState
    sink: Callable[[Row], None]
    progress: Progress

    def shards(self) -> Shards: ...


def literature_loop(search: Host, program: Program, cards_dir: Path | None) -> LiteratureLoop:
    """The search's loop over the card library in ``cards_dir`` (none: plateaus are reported, nothing runs)."""

    def record(found: Review, plateau: Plateau) -> bool:
        """The review's row, written before any of its runs (once, whichever worker gets there first)."""
        started = time.monotonic()
        search.run_dir.mkdir(parents=True, exist_ok=True)
        sheet = search.run_dir / f"{found.event}.md"
        sheet.write_text(worksheet(found, plateau.reason))
        row = search.provenance.event_row(
            found, sheet, plateau.reason, time.monotonic() - started, search.shards().split.sha
        )
        if not search.coordination.publish_event(search.state, row):
            return False
        search.sink(row)
        search.progress(f"[autofl] {row.event}: {row.description} ({sheet})")
        return True

    return LiteratureLoop(
        load_cards(cards_dir) if cards_dir else [],
        search.contract,
        search.factory,
        search.surface_dir,
        search.surface,
        program.plateau_after,
        record,
        search.progress,
    )
