"""One candidate's trial: its seed runs, the checks on them and, once decided, its verdict and ledger row."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.verdict import CRASH, INVALID, SCREENED, Verdict
from pytest_autofl.ledger.row import Row
from pytest_autofl.run.runner import Runner
from pytest_autofl.run.seedrun import SeedRun


class RunnerFor(Protocol):
    """A runner for a candidate in a trial directory; ``reuse`` off runs again what was already run."""

    def __call__(
        self,
        candidate: Candidate,
        trial_dir: Path,
        label: str,
        reuse: bool = True,
        contract: Contract | None = None,
    ) -> Runner: ...


@dataclass
class TrialResult:
    slot: int
    candidate: Candidate
    trial_dir: Path
    runs: list[SeedRun] = field(default_factory=list)  # selection seeds, in contract order
    extra_runs: list[SeedRun] = field(default_factory=list)  # the determinism repeat, confirmation seeds
    control: SeedRun | None = None  # a code change's zero-update control run (not a score: a check)
    screen: SeedRun | None = None  # its run on the contract's screen (one seed, fewer rounds)
    screen_incumbent: float | None = None  # the incumbent's score on the same screen
    incumbent_confirm: dict[int, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    mismatches: list[str] = field(
        default_factory=list
    )  # an exact rerun that did not reproduce its ledger row
    runtime_seconds: float = 0.0
    verdict: Verdict | None = None
    row: Row | None = None  # the ledger row, once recorded

    @property
    def screen_runs(self) -> list[SeedRun]:
        return [self.screen] if self.screen is not None else []

    @property
    def screened(self) -> bool:
        return self.verdict is not None and self.verdict.status == SCREENED

    @property
    def error(self) -> str | None:
        return next((r.error for r in [*self.screen_runs, *self.runs, *self.extra_runs] if r.error), None)

    @property
    def tampered(self) -> str | None:
        """Why the candidate's code changed the harness' job, if it did: an invalid candidate, not a crash."""
        return next((r.error for r in [*self.screen_runs, *self.runs, *self.extra_runs] if r.tampered), None)

    @property
    def all_runs(self) -> list[SeedRun]:
        """Every seed run of the trial, checks included."""
        checks = [self.control] if self.control is not None else []
        return [*self.screen_runs, *self.runs, *self.extra_runs, *checks]

    @property
    def retries(self) -> list[str]:
        """Why each re-run seed run was run again (the machine failed it), in run order."""
        return [reason for r in self.all_runs for reason in r.retries]

    @property
    def recovered(self) -> int:
        """Messaging errors FLARE recovered from, over every seed run."""
        return sum(len(r.recovered) for r in self.all_runs)

    @property
    def seed_scores(self) -> dict[int, float]:
        return {r.seed: r.score for r in self.runs if r.score is not None}

    @property
    def curves(self) -> dict[int, tuple[float | None, ...]]:
        """Validation after each round of every selection seed (curves to look at; never used to select)."""
        return {
            r.seed: tuple(None if v is None else round(v, 6) for v in r.curve) for r in self.runs if r.curve
        }

    @property
    def confirm_scores(self) -> dict[int, float]:
        selection = {r.seed for r in self.runs}
        return {r.seed: r.score for r in self.extra_runs if r.score is not None and r.seed not in selection}

    @property
    def score(self) -> float | None:
        scores = list(self.seed_scores.values())
        return sum(scores) / len(scores) if scores and not self.error else None

    @property
    def n_params(self) -> int | None:
        return next((r.n_params for r in self.runs if r.n_params is not None), None)

    @property
    def seconds_per_run(self) -> float | None:
        values = [r.runtime_seconds for r in self.runs if r.score is not None]
        return sum(values) / len(values) if values else None

    @property
    def cpu_seconds(self) -> float | None:
        """Median CPU seconds per run, as the harness' meter measured them (the budget's measure)."""
        values = [r.cpu_seconds for r in [*self.runs, *self.extra_runs] if r.cpu_seconds is not None]
        return statistics.median(values) if values else None

    @property
    def comm_bytes(self) -> float | None:
        """Mean bytes of model traffic per run (per seed)."""
        values = [r.comm_bytes for r in self.runs if r.comm_bytes is not None]
        return sum(values) / len(values) if values else None

    @property
    def status(self) -> str:
        if self.error:
            return CRASH
        if self.violations:
            return INVALID
        return self.verdict.status if self.verdict else "pending"
