"""A candidate file run as one item: loaded and validated (a broken file is an ``invalid`` row), skipped if the
campaign already has its row, preceded by the baseline when the campaign has no incumbent yet (a verdict
needs one), then run and recorded like a search candidate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.verdict import CRASH, INVALID, KEEP, Verdict
from pytest_autofl.proposers.candidate_file import load_candidate_file
from pytest_autofl.search.campaign import Search
from pytest_autofl.search.proposals import rejected


@dataclass(frozen=True)
class FileOutcome:
    verdict: Verdict | None = None
    line: str = ""  # the verdict line for the terminal
    skipped: str = ""  # why the file did not run (its row exists)
    failure: str = ""  # one line: rejected, crash, invalid, or the baseline could not run


def reject(search: Search, name: str, reason: str) -> Verdict:
    """Record a candidate that never ran (malformed file, knob out of bounds) as an ``invalid`` row."""
    candidate = Candidate(
        params={}, family="rejected", description=name, proposer="file", source=f"file:{name}"
    )
    return search.record(rejected(search, candidate, reason, len(search.results) + 1))


def run_candidate_file(search: Search, path: Path, force: bool) -> FileOutcome:
    try:
        candidate = load_candidate_file(path, search.factory, search.surface_dir)
    except AutoFLError as exc:
        reject(search, path.name, str(exc))
        return FileOutcome(failure=f"rejected (recorded as invalid): {exc}")
    prior = search.state.prior_row(candidate)
    if prior and not force:
        return FileOutcome(
            skipped=f"{candidate.id} already ran under this contract (row {prior.row_id}, {prior.status}); "
            "--autofl-force runs it again"
        )
    baseline = search.factory.make({}, source="baseline")
    if search.incumbent is None and candidate.key != baseline.key:
        base = search.record(search.run(baseline, len(search.results) + 1))
        if base.status != KEEP:
            return FileOutcome(base, failure=f"the baseline could not run ({base.status}): {base.reason}")
    verdict = search.record(search.run(candidate, len(search.results) + 1))
    return FileOutcome(
        verdict,
        line=f"[autofl] {path.name} -> {candidate.id}: {verdict.status.upper()} - {verdict.reason}",
        failure=f"{verdict.status}: {verdict.reason}" if verdict.status in (CRASH, INVALID) else "",
    )
