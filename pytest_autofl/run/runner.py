"""Run one candidate seed by seed as real NVFlare simulations, then score each with the evaluator.

Layout of a trial directory (the ledger's ``artifacts`` column points at it)::

    <trial>/candidate.json            the candidate and the contract hash it ran under
    <trial>/autofl_surface/           a private copy of the surface (the user's tree is never touched)
    <trial>/reference/autofl_surface/ a code change's: the unchanged surface, each client's twin (measured beside)
    <trial>/export-seed-<s>.log       the one process that built the jobs of several seeds
    <trial>/seed-<s>/client.json      what the client script reads: seed, knobs, budget, shard directory
    <trial>/seed-<s>/spec.json        what the job was built from
    <trial>/seed-<s>/job/trial/       the exported FLARE job (SimEnv); POC / prod build it where they submit it
    <trial>/seed-<s>/run.log          the simulator's output
    <trial>/seed-<s>/audit.jsonl      what the server received, written by the harness' audit filter
    <trial>/seed-<s>/ws/trial/...     the NVFlare workspace (final global model under server/simulate_job)
    <trial>.evaluator/evaluate-validation-<n>.*  beside the trial: the n-th evaluator's spec, the models it
                                      scored, its log, and its predict process' spec, inputs (never labels),
                                      outputs per model and log

The export writes only ``seed-<s>/job/``; a simulation only its own ``seed-<s>/`` and there not ``client.json``,
``spec.json``, the checked job or the clients' ``site-local/`` (read-only).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.progress import Progress, Round
from pytest_autofl.core.schema import load_schema
from pytest_autofl.data.datasets import task_of
from pytest_autofl.run import infrastructure
from pytest_autofl.run.curves import write_curve
from pytest_autofl.run.evaluator import Evaluator
from pytest_autofl.run.job import ExportFailure, export_jobs, run_simulation, seed_spec
from pytest_autofl.run.sandbox import NO_SANDBOX, Sandbox
from pytest_autofl.run.seedrun import SeedRun
from pytest_autofl.run.surface import model_entry, prepare_surface


class Runner(Protocol):
    """Runs one candidate's seeds; ``evaluate`` scores runs made with ``evaluate=False`` in one go."""

    def run(self, seed: int, tag: str = "", evaluate: bool = True) -> SeedRun: ...

    def evaluate(self, runs: list[SeedRun]) -> None: ...


REFERENCE = "reference"  # in a code change's trial: the unchanged surface's copy


def beside(trial_dir: Path, what: str) -> Path:
    """A directory next to a trial's, never inside it: the trial is what candidate processes see, so the
    harness' files (the evaluator's) and other candidates' runs (the incumbent confirmed against it, the compute
    reference) live outside, where the sandbox shows nothing."""
    return trial_dir.with_name(f"{trial_dir.name}.{what}")


# (candidate, contract, surface_dir, shard_dir, trial_dir, progress) -> a Runner
RunnerFactory = Callable[[Candidate, Contract, Path, Path, Path, Progress], Runner]


class CandidateRunner:
    """Runs one candidate seed by seed in its trial directory: the surface is copied once, each seed is a
    real NVFlare simulation, then scored right away so the caller can decide whether it needs another seed."""

    def __init__(
        self,
        candidate: Candidate,
        contract: Contract,
        surface_dir: Path,
        shard_dir: Path,
        trial_dir: Path,
        progress: Progress,
        startup_kit: Path | None = None,
        preload: bool = True,
        sandbox: Sandbox = NO_SANDBOX,
    ):
        self.startup_kit = startup_kit  # None: SimEnv; else the admin kit of a POC / production deployment
        self.preload = preload  # SimEnv: run the simulator through ``prefork`` (imports once per simulation)
        self.sandbox = sandbox  # around every process that runs candidate code
        self.candidate, self.contract, self.shard_dir, self.trial_dir = (
            candidate,
            contract,
            shard_dir,
            trial_dir,
        )
        self.progress = progress
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "candidate.json").write_text(
            json.dumps(
                {
                    "id": candidate.id,
                    "family": candidate.family,
                    "description": candidate.description,
                    "params": candidate.params,
                    "patch_sha": candidate.patch_sha,
                    "contract_sha": contract.sha,
                },
                indent=1,
            )
        )
        self.surface_parent = prepare_surface(surface_dir, trial_dir, candidate.files, candidate.diff)
        # a code change's clients run the unchanged surface as their twins: copied before any candidate code runs
        self.reference = prepare_surface(surface_dir, trial_dir / REFERENCE) if candidate.patch_sha else None
        self.zero_meta = load_schema(surface_dir).zero_meta
        self._specs: dict[str, dict[str, Any]] = {}  # exported jobs, by seed directory name
        self._export_lock = threading.Lock()
        self._tampered: ExportFailure | None = None
        self._evaluator: Evaluator | None = None  # started with the runs it will score
        self._evaluations = 0
        self._evaluator_lock = threading.Lock()

    def _spec(self, seed: int, tag: str) -> dict[str, Any] | ExportFailure:
        """The exported job of ``seed``; the first call exports every selection seed at once (one process).
        A tampered export fails every later call too: nothing of that candidate runs."""
        name, c = f"seed-{seed}{tag}", self.contract
        with self._export_lock:
            if self._tampered is not None:
                return self._tampered
            if name not in self._specs:
                wanted = [(seed, tag)] + [
                    (s, "") for s in self.contract.seeds if f"seed-{s}" not in self._specs
                ]
                specs = {
                    f"seed-{s}{t}": seed_spec(
                        self.candidate,
                        self.contract,
                        s,
                        t,
                        self.surface_parent,
                        self.shard_dir,
                        self.trial_dir,
                        self.zero_meta,
                        self.reference,
                    )
                    for s, t in dict.fromkeys(wanted)
                }
                if self.startup_kit is not None:  # a deployment: built for it here, submitted as a folder
                    for spec in specs.values():
                        spec.update(startup_kit=str(self.startup_kit), timeout=c.budget["wall_clock_seconds"])
                        (Path(spec["client_config"]).parent / "spec.json").write_text(
                            json.dumps(spec, indent=1)
                        )
                log = self.trial_dir / f"export-{name}.log"
                failure = export_jobs(list(specs.values()), self.surface_parent, log, self.sandbox)
                if failure is not None:
                    self._tampered = failure if failure.tampered else None
                    return failure
                self._specs.update(specs)
            return self._specs[name]

    def run(self, seed: int, tag: str = "", evaluate: bool = True) -> SeedRun:
        """One seed (``tag`` separates a repeat of the same seed); the error, if any, is on the SeedRun.
        ``evaluate=False`` leaves the scoring to a later ``evaluate`` call that scores several runs at once."""
        c = self.contract
        self.progress(Round(f"{seed}{tag}", 0, c.rounds, c.num_clients))
        self._warm_evaluator()
        try:
            spec = self._spec(seed, tag)
            if isinstance(spec, ExportFailure):
                return SeedRun(
                    seed=seed,
                    directory=self.trial_dir / f"seed-{seed}{tag}",
                    error=f"seed {seed}{tag}: {spec.reason}",
                    tampered=spec.tampered,
                )
            run = self._simulate(spec, seed, tag)
        except BaseException:  # interrupted: the waiting evaluator exits now, not after its wait
            if (evaluator := self._take_evaluator()) is not None:
                evaluator.cancel()
            raise
        if run.error:
            self.progress(f"seed {seed}{tag}: CRASH after {run.runtime_seconds:.1f} s")
        elif evaluate:
            self.evaluate([run])
        return run

    def _simulate(self, spec: dict[str, Any], seed: int, tag: str) -> SeedRun:
        """The simulation, run again in a fresh workspace while it fails for the machine's reasons
        (``outcome.TRANSIENT``), at most ``infrastructure.RETRIES`` times; each failed attempt is kept in
        ``attempt-<k>/`` and its reason in ``retries``. A failure that repeats every time is a crash."""
        retries: list[str] = []
        while True:
            run = run_simulation(spec, self.contract, self.progress, tag, self.preload, self.sandbox)
            run.retries = retries
            if not run.transient:
                return run
            if len(retries) == infrastructure.RETRIES:
                run.error = f"{run.error} (an infrastructure failure on all {len(retries) + 1} attempts)"
                return run
            kept = run.set_aside(len(retries) + 1)  # the reason names the attempt's log where it now is
            retries.append(str(run.error).replace(str(run.log_path), str(kept / run.log_path.name)))
            self.progress(
                f"seed {seed}{tag}: infrastructure failure, not the candidate's ({retries[-1]}); running it again "
                f"in a fresh workspace ({len(retries)} of {infrastructure.RETRIES}; the failed attempt is in {kept})"
            )
            time.sleep(infrastructure.RETRY_PAUSE_SECONDS * len(retries))

    def _new_evaluator(self, wait_seconds: float) -> Evaluator:
        self._evaluations += 1
        return Evaluator(
            self.contract,
            self.surface_parent,
            "validation",
            beside(self.trial_dir, "evaluator"),
            f"-{self._evaluations}",
            wait_seconds,
            self.sandbox,
        )

    def _warm_evaluator(self) -> None:
        """Start the evaluator of the runs now starting, so it is ready (torch, model, held-out set loaded)
        when they end instead of starting then. It waits up to a few wall-clock caps for them."""
        with self._evaluator_lock:
            if self._evaluator is None or not self._evaluator.alive:
                cap = float(self.contract.budget["wall_clock_seconds"])
                self._evaluator = self._new_evaluator(3 * cap + 60)

    def _take_evaluator(self) -> Evaluator | None:
        with self._evaluator_lock:
            evaluator, self._evaluator = self._evaluator, None
            return evaluator

    def evaluate(self, runs: list[SeedRun]) -> None:
        """Score the finished, unscored runs in one evaluator process (torch and the model imported once):
        the one started with the runs, or a fresh one if it is gone."""
        todo = [r for r in runs if r.error is None and r.score is None]
        evaluator = self._take_evaluator()
        if not todo:
            if evaluator is not None:
                evaluator.cancel()
            return
        c = self.contract
        models = [
            model_entry(self.candidate.params, r.seed, r.model_path, task_of(c), r.round_models(c.rounds))
            for r in todo
        ]
        if evaluator is None or not evaluator.alive:
            with self._evaluator_lock:
                evaluator = self._new_evaluator(0.0)
        try:
            scored = evaluator.score(models)
        except RuntimeError as exc:
            for r in todo:
                r.error = f"{r.directory.name}: {exc}"
            return
        for r, entry in zip(todo, scored, strict=True):
            r.score, r.n_params, r.initial = float(entry["score"]), int(entry["n_params"]), entry["initial"]
            r.digest, r.curve = str(entry["digest"]), entry.get("curve")
            if r.curve:
                write_curve(r.directory, f"validation/{c.raw['metric']['name']}", r.curve)
            self.progress(
                f"seed {r.directory.name.removeprefix('seed-')}: validation {c.raw['metric']['name']} "
                f"{r.score:.4f} ({r.runtime_seconds:.1f} s)"
            )
