"""The search facade: one session over a campaign, driven by the plugin's items (or by plain Python).

``next_candidate`` asks the proposer, ``run`` runs a candidate by the seed protocol and checks the fairness
invariants, ``record`` turns the trial into its ledger row and hands it to the sink (the one ledger writer).
It knows nothing of pytest, so the whole loop is testable with a scripted runner, even without NVFlare.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pytest_autofl.core.candidate import Candidate, CandidateFactory
from pytest_autofl.core.contract import Contract, check_pin, load_contract, sha256_of
from pytest_autofl.core.progress import Progress, labelled
from pytest_autofl.core.schema import load_schema
from pytest_autofl.core.verdict import Verdict
from pytest_autofl.data import datasets
from pytest_autofl.data.split import Shards, write_shards
from pytest_autofl.ledger import store, writer
from pytest_autofl.ledger.row import Row
from pytest_autofl.proposers import PROPOSERS
from pytest_autofl.proposers.base import DEFAULT_OPTIONS, CampaignView, ProposerOptions, ProposerSetup
from pytest_autofl.run import infrastructure
from pytest_autofl.run.resume import ResumingRunner
from pytest_autofl.run.runner import CandidateRunner, Runner, RunnerFactory
from pytest_autofl.run.sandbox import Sandbox
from pytest_autofl.run.sandbox import resolve as resolve_sandbox
from pytest_autofl.run.seedrun import SeedRun
from pytest_autofl.run.surface import surface_sha
from pytest_autofl.search import holdout
from pytest_autofl.search.calibration import Calibration
from pytest_autofl.search.coordination import Coordination, Solo
from pytest_autofl.search.fairness import trial_violations
from pytest_autofl.search.literature import literature_loop
from pytest_autofl.search.protocol import SeedProtocol
from pytest_autofl.search.record import Provenance, verdict_of
from pytest_autofl.search.screen import Screening
from pytest_autofl.search.state import CampaignState, candidate_of
from pytest_autofl.search.trial import TrialResult


def _sandbox(choice: str, workdir: Path, ledger_path: Path, contract: Contract) -> Sandbox:
    """The sandbox around every process that runs candidate code: the harness' state and the data set's own
    files are hidden from it."""
    hidden = (
        str(workdir),
        str(ledger_path),
        *map(str, datasets.data_files(contract.raw["dataset"], contract.directory)),
    )
    return resolve_sandbox(choice, hidden)


def _campaign_contract(benchmarks_dir: Path, benchmark: str) -> Contract:
    """The benchmark's contract, pinned (an edited contract is a new campaign, never a silent change), over a
    known data set or kind (an error before anything runs)."""
    contract = load_contract(benchmarks_dir, benchmark)
    check_pin(contract)
    datasets.check(contract)
    return contract


class Search:
    def __init__(
        self,
        *,
        rootdir: Path,
        benchmarks_dir: Path,
        benchmark: str,
        surface_dir: Path,
        workdir: Path,
        ledger_path: Path,
        progress: Progress = print,
        calibrate: bool = False,
        force: bool = False,
        parallel: int = 1,
        proposer: str = "builtin",
        coordination: Coordination | None = None,
        sink: Callable[[Row], None] | None = None,
        env_name: str = "sim",
        runner_factory: RunnerFactory = CandidateRunner,
        commit: str | None = None,
        sandbox: str = "off",
        options: ProposerOptions = DEFAULT_OPTIONS,
        screen: bool = True,
    ):
        self.rootdir, self.workdir, self.ledger_path, self.env_name = rootdir, workdir, ledger_path, env_name
        self.runner_factory, self.progress = runner_factory, progress
        self.force, self.parallel = force, parallel
        self.contract: Contract = _campaign_contract(benchmarks_dir, benchmark)
        self.surface_dir = surface_dir = self.contract.surface_dir(rootdir, surface_dir)
        self.schema = options.program.narrow(load_schema(surface_dir))  # program.md narrows, never widens
        self.factory = CandidateFactory(self.schema)
        self.surface = {name: (surface_dir / name).read_text() for name in self.schema.files}
        setup = ProposerSetup(
            self.contract, self.schema, self.factory, rootdir, workdir, surface_dir, options
        )
        self.proposer = PROPOSERS.get(proposer)(setup)
        self.coordination: Coordination = coordination or Solo()
        self._seal = writer.Seal.checked(workdir, ledger_path)  # a tampered ledger stops the search here
        self.sink = sink or writer.LedgerWriter(ledger_path, self._seal).write
        self.sandbox = _sandbox(sandbox, workdir, ledger_path, self.contract)
        self.state = CampaignState(store.read_rows(ledger_path), self.contract.sha)
        self.surface_sha = surface_sha(surface_dir)  # of the user's surface, as the session started
        self.calibration = Calibration(
            self.contract, workdir, self.surface_sha, calibrate, parallel, progress
        )
        self.protocol = self._protocol(parallel, screen)
        self.provenance = Provenance(
            rootdir, self.contract, self.schema.defaults(), env_name, self.sandbox.mode, commit
        )
        self.run_dir = workdir / "runs" / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        self.results: list[TrialResult] = []  # this process' trials
        self.literature = literature_loop(self, options.program, options.cards_dir)
        self._shards: Shards | None = None

    def _protocol(self, parallel: int, screen: bool) -> SeedProtocol:
        """The seed protocol, behind the contract's screen unless it is switched off."""
        of = partial(candidate_of, factory=self.factory, rootdir=self.rootdir)
        screening = Screening.of(self.contract, of, self.runner_for, parallel) if screen else None
        return SeedProtocol(
            self.contract,
            self.calibration,
            self.state,
            self.coordination,
            self.factory,
            self.runner_for,
            parallel,
            of,
            screening,
        )

    # -- what the campaign knows ------------------------------------------------------------------------
    @property
    def baseline(self) -> Row | None:
        return self.state.baseline

    @property
    def incumbent(self) -> Row | None:
        return self.state.incumbent

    def view(self) -> CampaignView:
        return self.state.view(self.contract, self.schema, self.factory, self.surface)

    def shards(self) -> Shards:
        """The clients' shards, checked against the data set before every run and rewritten if they differ
        (the data set is loaded once per session)."""
        if self._shards is None or (stale := self._shards.problems()):
            if self._shards is not None:
                self.progress(
                    f"[autofl] rewriting shards that changed since the last run: {'; '.join(stale)}"
                )
            self._shards = write_shards(self.contract, self.workdir / "data")
        return self._shards

    # -- the loop ---------------------------------------------------------------------------------------
    def next_candidate(self) -> Candidate:
        """The proposer's next candidate, reserved so that no other xdist worker runs it. A campaign starts
        with the baseline (the schema defaults), whoever proposes: every verdict is relative to it."""

        def propose() -> Candidate:
            baseline = self.factory.make({}, source="baseline")
            view = self.view()
            if self.state.baseline is None and baseline.key not in view.tried():
                return baseline
            return self.literature.propose(view, self.proposer)

        return self.coordination.reserve(self.state, propose, self.progress)

    def trial_dir(self, candidate: Candidate, slot: int) -> Path:
        return self.run_dir / f"{slot:02d}-{candidate.id}"

    def runner_for(
        self,
        candidate: Candidate,
        trial_dir: Path,
        label: str,
        reuse: bool = True,
        contract: Contract | None = None,
    ) -> Runner:
        """A runner for ``candidate`` under the campaign's contract (or ``contract``: its screen); unless
        ``reuse`` is off (or --autofl-force), finished seed runs of the same candidate under the same contract
        and surface are reused instead of repeated."""
        contract = contract or self.contract
        shard_dir = self.shards().directory
        progress = labelled(self.progress, label)
        inner = self.runner_factory(candidate, contract, self.surface_dir, shard_dir, trial_dir, progress)
        if not reuse or self.force:
            return inner
        key = sha256_of(
            {
                "contract": contract.sha,
                "surface": self.surface_sha,
                "candidate": candidate.key,
                "env": self.env_name,
                "infra": infrastructure.fingerprint(),  # a run on other settings is not this run
            }
        )
        return ResumingRunner(inner, self.workdir / "finished", key, trial_dir, progress, self._seal.key)

    def _baseline_runner(self) -> Runner:
        assert self.baseline is not None
        base, trial_dir = self.factory.make(self.baseline.params), self.run_dir / "calibration"
        return self.runner_for(base, trial_dir, "[autofl calibration]", not self.calibration.recalibrate)

    def run(self, candidate: Candidate, slot: int) -> TrialResult:
        """Run a candidate by the seed protocol and check the fairness invariants; ``record`` writes it."""
        trial_dir = self.trial_dir(candidate, slot)
        result = TrialResult(slot=slot, candidate=candidate, trial_dir=trial_dir)
        started = time.monotonic()
        label = f"[autofl {slot:02d}] {candidate.id} ({candidate.description})"
        if candidate.files and (refused := self.sandbox.refusal()):
            result.violations = [refused]
            return result
        failure = self.calibration.ensure(self.state.baseline is not None, self._baseline_runner)
        first = self.incumbent is None
        runner = self.runner_for(
            candidate, trial_dir, label, reuse=not (first and self.calibration.recalibrate)
        )
        if failure:
            result.extra_runs.append(SeedRun(seed=self.contract.seeds[0], directory=trial_dir, error=failure))
        elif first:
            self.protocol.baseline(runner, result, started)
        else:
            self.protocol.sequential(runner, result)
        result.runtime_seconds = time.monotonic() - started
        if not result.error and not result.screened:  # a screened candidate ran no contract seed
            self.check_invariants(result)
        return result

    def check_invariants(self, result: TrialResult) -> None:
        assert self._shards is not None  # the trial's runner made them
        result.violations = trial_violations(result, self.contract, self._shards)

    def record(self, result: TrialResult) -> Verdict:
        """The trial's verdict and ledger row (``result.row``): shared with the other workers, handed to the
        sink, told to the proposer. Called once per finished trial."""
        verdict = result.verdict = verdict_of(result)
        incumbent_id = self.incumbent.candidate_id if self.incumbent else ""
        noise = self.calibration.noise.noise if self.calibration.noise else None
        result.row = self.provenance.row(result, verdict, incumbent_id, noise, self.shards().split.sha)
        self.sink(result.row)  # first: a row the ledger refused is not counted as recorded
        self.results.append(result)
        self.coordination.publish(self.state, result.row)
        self.proposer.tell(self.view(), result.row)
        return verdict

    def receive(self, row: Row) -> None:
        """A verdict row an xdist worker recorded, on the controller: count it (the controller writes it)."""
        self.state.add(row)
        self.calibration.reload()

    # -- the final report -------------------------------------------------------------------------------
    def test_scores(self) -> dict[str, float] | None:
        """Held-out test scores of the baseline and the best (``holdout``); never used to select."""
        return holdout.final_test_scores(
            self.contract, self.baseline, self.incumbent, self.rootdir, self.run_dir, self.sandbox
        )
