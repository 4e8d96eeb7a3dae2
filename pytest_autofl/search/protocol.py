"""The seed protocol: which seeds a candidate runs, in which batches, and when its verdict is taken.

The baseline runs the A/A calibration. Every other candidate runs the first ``min_seeds`` seeds, then one
seed per look until the verdict is clear; a keep completes every selection seed and is confirmed on fresh
seeds against the incumbent. With room for side-by-side runs, later seeds start early (speculatively), but the
looks take one seed at a time in seed order, so the verdict is the serial one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pytest_autofl.core.candidate import Candidate, CandidateFactory
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.verdict import DISCARD, KEEP, NARROW, Verdict, confirm, decide_under
from pytest_autofl.ledger.row import Row
from pytest_autofl.run.job import CONTROL_TAG
from pytest_autofl.run.parallel import run_batch
from pytest_autofl.run.runner import Runner, beside
from pytest_autofl.search.calibration import Calibration
from pytest_autofl.search.coordination import Coordination
from pytest_autofl.search.screen import Screening
from pytest_autofl.search.state import CampaignState
from pytest_autofl.search.trial import RunnerFor, TrialResult


class SeedProtocol:
    def __init__(
        self,
        contract: Contract,
        calibration: Calibration,
        state: CampaignState,
        coordination: Coordination,
        factory: CandidateFactory,
        runner_for: RunnerFor,
        parallel: int,
        candidate_of: Callable[[Row], Candidate],
        screening: Screening | None = None,
    ):
        self.screening = screening  # the contract's screen, unless switched off
        self.candidate_of = candidate_of  # a ledger row's candidate, patch included (state.candidate_of)
        self.contract, self.calibration, self.state = contract, calibration, state
        self.coordination, self.factory, self.runner_for, self.parallel = (
            coordination,
            factory,
            runner_for,
            parallel,
        )

    def baseline(self, runner: Runner, result: TrialResult, started: float) -> None:
        """The first candidate of a campaign: A/A runs that measure the noise floor; kept if they ran."""
        *runs, repeat = self.calibration.batch(runner)
        result.runs.extend(runs)
        result.extra_runs.append(repeat)
        if result.error:
            return
        self.calibration.measure(runs, repeat, started)
        if self.calibration.noise is None:
            return
        result.verdict = Verdict(
            KEEP,
            None,
            f"baseline: becomes the first incumbent; {self.calibration.noise.describe()}",
            threshold=self.calibration.threshold(),
        )

    def _decide(self, result: TrialResult) -> Verdict:
        self.coordination.refresh(self.state)  # under xdist, another worker may have found a better incumbent
        incumbent = self.state.incumbent
        assert incumbent is not None
        cost = (
            result.comm_bytes / incumbent.comm_bytes if result.comm_bytes and incumbent.comm_bytes else None
        )
        inc_time, own_time = incumbent.seconds_per_run, result.seconds_per_run
        return decide_under(
            self.contract,
            result.seed_scores,
            incumbent.seed_scores,
            self.calibration.threshold(),
            cost_ratio=cost,
            time_ratio=own_time / inc_time if own_time and inc_time else None,
        )

    def sequential(self, runner: Runner, result: TrialResult) -> None:
        """Runs past the deciding look are left out of the row (and reused if a keep needs them). A code
        change also runs its zero-update control beside the first seeds."""
        incumbent = self.state.incumbent
        if self.screening is not None and incumbent is not None and self.screening.drops(result, incumbent):
            return
        seeds, min_seeds = self.contract.seeds, self.contract.min_seeds
        width = max(1, self.parallel)
        first = max(min_seeds, min(width, len(seeds)))
        batch = [(runner, s, "") for s in seeds[:first]]
        if result.candidate.patch_sha:
            batch.append((runner, seeds[0], CONTROL_TAG))
        ahead = run_batch(batch, self.parallel)
        if result.candidate.patch_sha:
            result.control = ahead.pop()
        rest = list(seeds[first:])
        result.runs.extend(ahead[:min_seeds])
        ahead = ahead[min_seeds:]
        if result.error:
            return
        verdict = self._decide(result)
        while verdict.status == NARROW and (ahead or rest):
            if not ahead:
                wave, rest = rest[:width], rest[width:]
                ahead = run_batch([(runner, s, "") for s in wave], self.parallel)
            run = ahead.pop(0)
            result.runs.append(run)
            if run.error:
                return
            verdict = self._decide(result)
        if verdict.status == KEEP:
            result.runs.extend(ahead)  # a future incumbent needs every selection seed
            missing = seeds[len(result.runs) :]
            result.runs.extend(run_batch([(runner, s, "") for s in missing], self.parallel))
            if result.error:
                return
            verdict = self._confirm(runner, result, verdict)
        result.verdict = verdict

    def _confirm(self, runner: Runner, result: TrialResult, verdict: Verdict) -> Verdict:
        """Re-run a keep and the incumbent on fresh, never-used seeds before the keep may replace it."""
        incumbent = self.state.incumbent
        assert incumbent is not None
        wanted = self.contract.statistics.confirm_per_keep
        fresh = self.coordination.confirm_seeds(self.state, self.contract.confirm_seeds, wanted)
        if len(fresh) < wanted:
            return replace(
                verdict, status=NARROW, reason=verdict.reason + "; no fresh confirmation seeds left"
            )
        try:
            inc = self.candidate_of(incumbent)
        except AutoFLError as exc:
            return replace(
                verdict, status=NARROW, reason=f"{verdict.reason}; the incumbent cannot be rerun: {exc}"
            )
        inc_runner = self.runner_for(
            inc, beside(result.trial_dir, "incumbent"), f"[autofl {result.slot:02d}] incumbent {inc.id}"
        )
        runs = run_batch([(r, s, "") for s in fresh for r in (runner, inc_runner)], self.parallel)
        for run, inc_run in zip(runs[::2], runs[1::2], strict=True):
            result.extra_runs.append(run)
            if run.error:
                return verdict
            if inc_run.error or inc_run.score is None:
                run.error = f"incumbent rerun for confirmation failed: {inc_run.error}"
                return verdict
            result.incumbent_confirm[run.seed] = inc_run.score
        ok, mean = confirm(
            result.confirm_scores,
            result.incumbent_confirm,
            self.calibration.threshold(),
            verdict.for_cost,
            self.contract.higher_is_better,
        )
        where = f"fresh seeds {fresh}: gain {mean:+.4f}"
        if ok:
            return replace(verdict, reason=f"{verdict.reason}; confirmed on {where}")
        return replace(
            verdict,
            status=DISCARD,
            reason=f"failed confirmation on {where} < threshold; selection said: {verdict.reason}",
        )
