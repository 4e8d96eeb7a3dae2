"""``--autofl-rerun``: which ledger row to run again, and whether the new runs reproduce its scores."""

from __future__ import annotations

import time

from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.ledger import store
from pytest_autofl.ledger.row import Row
from pytest_autofl.run.parallel import run_batch
from pytest_autofl.run.surface import surface_sha
from pytest_autofl.search.campaign import Search
from pytest_autofl.search.state import candidate_of
from pytest_autofl.search.trial import TrialResult


def find_row(search: Search, ident: str) -> Row:
    """The row to rerun: by row_id, or the latest row of a candidate_id, under the active contract."""
    contract, ledger_path = search.contract, search.ledger_path
    rows = store.read_rows(ledger_path)
    matches = [r for r in rows if ident in (r.row_id, r.candidate_id)]
    if not matches:
        known = sorted({r.candidate_id for r in rows if ident[:6] in r.candidate_id})[:5]
        hint = f"; similar ids: {', '.join(known)}" if known else ""
        raise AutoFLError(f"no ledger row with candidate_id or row_id {ident!r} in {ledger_path}{hint}")
    row = matches[-1]
    if not row.clean or not row.seed_scores:
        raise AutoFLError(f"row {row.row_id} is {row.status}: there is no score to reproduce")
    if row.contract_sha != contract.sha:
        raise AutoFLError(
            f"row {row.row_id} ran under benchmark {row.benchmark!r} (contract_sha "
            f"{row.contract_sha[:12]}), not the active {contract.name!r} ({contract.sha[:12]}); "
            f"pass --autofl-benchmark {row.benchmark} (with that contract pinned)"
        )
    return row


def run_again(search: Search, row: Row) -> TrialResult:
    """Run the row's candidate again on exactly its seeds and compare every score with the ledger."""
    candidate = candidate_of(row, search.factory, search.rootdir)
    result = TrialResult(slot=0, candidate=candidate, trial_dir=search.run_dir / f"rerun-{candidate.id}")
    started = time.monotonic()
    label = f"[autofl rerun] {candidate.id} ({candidate.description})"
    runner = search.runner_for(candidate, result.trial_dir, label, reuse=False)  # a rerun exists to run again
    result.runs.extend(run_batch([(runner, s, "") for s in sorted(row.seed_scores)], search.parallel))
    result.runtime_seconds = time.monotonic() - started
    if result.error:
        return result
    search.check_invariants(result)
    tolerance = search.contract.statistics.rerun_tolerance
    result.mismatches = mismatches(row, result.seed_scores, tolerance, surface_sha(search.surface_dir))
    return result


def mismatches(row: Row, scores: dict[int, float], tolerance: float, surface_now: str) -> list[str]:
    """Every seed whose score differs from the ledger's by more than the tolerance (and, if any, whether the
    surface changed since)."""
    out = [
        f"seed {seed}: {score:.6f} now vs {row.seed_scores[seed]:.6f} in the ledger (|d| "
        f"{abs(score - row.seed_scores[seed]):.2g} > tolerance {tolerance:g})"
        for seed, score in sorted(scores.items())
        if abs(score - row.seed_scores[seed]) > tolerance
    ]
    if out and row.surface_sha and row.surface_sha != surface_now:
        out.append(
            f"the surface changed since that row (surface_sha {row.surface_sha[:12]} then, {surface_now[:12]} now)"
        )
    return out


def outcome_line(row: Row, result: TrialResult, tolerance: float) -> str:
    """The one line a rerun ends with: REPRODUCED, DOES NOT REPRODUCE, CRASH or INVALID, with the scores."""
    if result.error or result.violations:
        outcome = "CRASH" if result.error and not result.tampered else "INVALID"
    else:
        outcome = "DOES NOT REPRODUCE" if result.mismatches else "REPRODUCED"
    seeds = ", ".join(f"seed {s}: {v:.6f}" for s, v in sorted(result.seed_scores.items()))
    score = f"{row.score:.6f}" if row.score is not None else "0.000000"
    return (
        f"[autofl rerun] {row.candidate_id} (row {row.row_id}): {outcome}; {seeds} "
        f"(ledger score {score}, tolerance {tolerance:g})"
    )
