"""What the campaign knows, as typed ledger rows: the ledger's earlier rows under the active contract, this
run's rows (every worker's, under xdist) and the candidates other workers are running. The baseline and the
incumbent are derived from the rows, never stored beside them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from pytest_autofl.core.candidate import Candidate, CandidateFactory, candidate_key
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.schema import Schema
from pytest_autofl.core.verdict import CRASH
from pytest_autofl.ledger.row import Row
from pytest_autofl.proposers.base import CampaignView, Running, tried_keys
from pytest_autofl.run.surface import PATCH_FILE


class CampaignState:
    def __init__(self, prior: Sequence[Row], contract_sha: str):
        self.prior = [r for r in prior if r.contract_sha == contract_sha]  # a campaign is one contract
        self.rows: list[Row] = []  # this run's verdict rows
        self.running: tuple[Running, ...] = ()

    @property
    def known(self) -> list[Row]:
        return self.prior + self.rows

    @property
    def baseline(self) -> Row | None:
        """The campaign's first keep."""
        return next((r for r in self.known if r.is_keep), None)

    @property
    def incumbent(self) -> Row | None:
        """A keep beats the incumbent of its time, so the latest keep is the incumbent."""
        return next((r for r in reversed(self.known) if r.is_keep), None)

    def has_event(self, event: str) -> bool:
        return any(r.is_literature and r.event == event for r in self.known)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def sync(self, rows: Sequence[Row], running: Sequence[Running]) -> None:
        """Catch up with the shared journal (xdist): every worker's rows and reservations."""
        self.rows = list(rows)
        self.running = tuple(running)

    def tried_keys(self) -> set[str]:
        """Candidates recorded or running (the proposer's view says the same)."""
        return tried_keys([*self.known, *self.running])

    def used_confirm_seeds(self) -> set[int]:
        return {s for r in self.known for s in r.confirm_seeds}

    def prior_row(self, candidate: Candidate) -> Row | None:
        """The latest clean or invalid row of this candidate (crashes may retry)."""
        key = candidate.key
        rows = [r for r in self.known if r.status != CRASH and candidate_key(r.params, r.patch_sha) == key]
        return rows[-1] if rows else None

    def view(
        self, contract: Contract, schema: Schema, factory: CandidateFactory, surface: Mapping[str, str]
    ) -> CampaignView:
        return CampaignView(contract, schema, factory, surface, tuple(self.known), self.running)


def candidate_of(row: Row, factory: CandidateFactory, rootdir: Path) -> Candidate:
    """The row's candidate, with its patch read back from the trial's saved copy (checked against patch_sha)."""
    candidate = factory.make(row.params, proposer=row.proposer or "builtin", source="rerun")
    if not row.patch_sha:
        return candidate
    saved = rootdir / row.trial_dir / PATCH_FILE
    try:
        files = tuple(sorted(json.loads(saved.read_text()).items()))
    except (OSError, ValueError) as exc:
        raise AutoFLError(
            f"row {row.row_id} has a patch, but its saved copy {saved} is unreadable: {exc}"
        ) from None
    candidate = replace(candidate, files=files, family=candidate.family + "+patch")
    if candidate.patch_sha != row.patch_sha:
        raise AutoFLError(f"{saved} does not hash to the row's patch_sha {row.patch_sha[:12]}")
    return candidate
