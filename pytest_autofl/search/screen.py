"""The screening cascade: before a candidate pays for the contract's seeds, it runs the contract's screen — one
fresh seed at fewer rounds (``Contract.screened``: a contract of its own, with its own hash) — beside the
incumbent's screen on the same seed. A candidate more than ``margin`` worse than the incumbent there is
``screened``: recorded with both screen scores, never run on the contract's seeds, and never part of a verdict
(its screen score is not a contract score). Every other candidate goes on to the full protocol unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.verdict import SCREENED, Verdict
from pytest_autofl.ledger.row import Row
from pytest_autofl.run.parallel import run_batch
from pytest_autofl.run.runner import Runner, beside
from pytest_autofl.search.trial import RunnerFor, TrialResult

CandidateOf = Callable[[Row], Candidate]  # a ledger row's candidate, patch included (state.candidate_of)


class Screening:
    def __init__(self, contract: Contract, candidate_of: CandidateOf, runner_for: RunnerFor, parallel: int):
        screen = contract.screen
        assert screen is not None
        self.screen, self.screened, self.higher = screen, contract.screened(), contract.higher_is_better
        self.candidate_of, self.runner_for, self.parallel = candidate_of, runner_for, parallel
        self._incumbent: dict[str, float] = {}  # incumbent id -> its screen score (run once per incumbent)

    @classmethod
    def of(
        cls, contract: Contract, candidate_of: CandidateOf, runner_for: RunnerFor, parallel: int
    ) -> Screening | None:
        """The contract's screen, or None if it names none."""
        return cls(contract, candidate_of, runner_for, parallel) if contract.screen else None

    def drops(self, result: TrialResult, incumbent: Row) -> bool:
        """Run the candidate's screen (and the incumbent's, once); True when the trial ends here: screened
        out (``result.verdict``), or its screen crashed (``result.error``)."""
        label = f"[autofl {result.slot:02d}] screen"
        jobs = [(self._runner(result, "screen", label, result.candidate), self.screen.seed, "")]
        known = self._incumbent.get(incumbent.candidate_id)
        if known is None:
            try:
                inc = self.candidate_of(incumbent)
            except AutoFLError:  # its patch copy is gone: no screen to compare with, the candidate goes on
                return False
            jobs.append(
                (self._runner(result, "screen-incumbent", f"{label} incumbent", inc), self.screen.seed, "")
            )
        runs = run_batch(jobs, self.parallel)
        result.screen = runs[0]
        if len(runs) > 1 and runs[1].score is not None:
            known = self._incumbent[incumbent.candidate_id] = runs[1].score
        if result.error or result.screen.score is None or known is None:
            return bool(result.error)  # no incumbent screen: the candidate goes on (the screen only saves)
        result.screen_incumbent = known
        gain = (result.screen.score - known) * (1 if self.higher else -1)
        if gain >= -self.screen.margin:
            return False
        result.verdict = Verdict(
            SCREENED,
            None,
            f"screen ({self.screen.rounds} rounds, seed {self.screen.seed}): {result.screen.score:.4f} vs the "
            f"incumbent's {known:.4f}, more than the margin {self.screen.margin:g} worse; not run on the "
            "contract's seeds",
        )
        return True

    def _runner(self, result: TrialResult, what: str, label: str, candidate: Candidate) -> Runner:
        return self.runner_for(candidate, beside(result.trial_dir, what), label, True, self.screened)
