"""Where a proposal becomes a trial: run it, or, when it never could run (a candidate file or a model answer
that failed validation), a trial that says why, with the proposal's transcript kept in its trial directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.errors import ProposalRejected
from pytest_autofl.search.trial import TrialResult

if TYPE_CHECKING:
    from pytest_autofl.search.campaign import Search


def run_next(search: Search, slot: int) -> TrialResult:
    """Propose and run; a rejected proposal is a trial with that violation (an ``invalid`` row).
    ProposerStopped and ProposerUnavailable pass through: no candidate, no row."""
    try:
        candidate = search.next_candidate()
    except ProposalRejected as exc:
        assert isinstance(exc.candidate, Candidate)
        return rejected(search, exc.candidate, str(exc), slot)
    keep_transcript(candidate, search.trial_dir(candidate, slot))
    return search.run(candidate, slot)


def rejected(search: Search, candidate: Candidate, reason: str, slot: int) -> TrialResult:
    """A candidate that never ran, as a trial whose one violation is why."""
    trial_dir = search.run_dir / f"{slot:02d}-rejected"
    keep_transcript(candidate, trial_dir)
    return TrialResult(slot, candidate, trial_dir, violations=[reason])


def keep_transcript(candidate: Candidate, trial_dir: Path) -> None:
    """A model-backed proposal's conversation, in its trial's artifacts."""
    if candidate.transcript:
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "proposal.json").write_text(candidate.transcript)
