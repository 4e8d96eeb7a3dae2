"""The per-run object the plugin keeps in ``config.stash``: contract, noise floor, proposer, results, verdicts.

It knows nothing of pytest: the plugin hands it a progress callback and calls ``next_candidate``, ``run`` and
``record`` from its hooks, so the whole search loop is testable as plain Python (with a fake runner, even
without NVFlare).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_autofl.core import noise
from pytest_autofl.core.candidate import Candidate, candidate_key, changed_knobs
from pytest_autofl.core.contract import Contract, check_pin, load_contract, sha256_of
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.invariants import RunFacts, check
from pytest_autofl.core.noise import NoiseFloor
from pytest_autofl.core.schema import Schema, load_schema
from pytest_autofl.core.verdict import CRASH, DISCARD, INVALID, KEEP, NARROW, Verdict, confirm, decide
from pytest_autofl.data.split import Split, shards_sha, write_shards
from pytest_autofl.ledger import store as ledger
from pytest_autofl.proposers.builtin import BuiltinProposer, Tried
from pytest_autofl.run.parallel import run_batch
from pytest_autofl.run.resume import ResumingRunner, Runner
from pytest_autofl.run.runner import (
    PATCH_FILE,
    SURFACE_PACKAGE,
    CandidateRunner,
    SeedRun,
    evaluate_models,
    surface_sha,
)
from pytest_autofl.search import journal
from pytest_autofl.search.journal import Journal

REPEAT = "-repeat"  # tag of the A/A repeat of the first seed
WAIT_SECONDS = 1.0  # how often an xdist worker looks again while another one runs the baseline
RunnerFactory = Callable[[Candidate, Contract, Path, Path, Path, Callable[[str], None]], Runner]


@dataclass
class TrialResult:
    slot: int
    candidate: Candidate
    trial_dir: Path
    runs: list[SeedRun] = field(default_factory=list)  # selection seeds, in contract order
    extra_runs: list[SeedRun] = field(default_factory=list)  # the determinism repeat, confirmation seeds
    incumbent_confirm: dict[int, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    mismatches: list[str] = field(
        default_factory=list
    )  # an exact rerun that did not reproduce its ledger row
    runtime_seconds: float = 0.0
    verdict: Verdict | None = None
    row: dict[str, str] | None = None  # the ledger row, once recorded

    @property
    def error(self) -> str | None:
        return next((r.error for r in self.runs + self.extra_runs if r.error), None)

    @property
    def seed_scores(self) -> dict[int, float]:
        return {r.seed: r.score for r in self.runs if r.score is not None}

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


@dataclass(frozen=True)
class Incumbent:
    id: str
    score: float
    seed_scores: dict[int, float]
    artifacts: str
    params: dict[str, Any]
    comm_bytes: float | None = None
    seconds_per_run: float | None = None


def _incumbent_of(row: dict[str, str]) -> Incumbent:
    return Incumbent(
        row["candidate_id"],
        float(row["score"]),
        {int(k): float(v) for k, v in json.loads(row["seed_scores"]).items()},
        row["artifacts"].split(";")[0],
        json.loads(row["params"]),
        float(row["comm_bytes"]) if row["comm_bytes"] else None,
        float(row["seconds_per_run"]) if row["seconds_per_run"] else None,
    )


def _rounded(scores: dict[int, float]) -> dict[int, float]:
    return {k: round(v, 6) for k, v in sorted(scores.items())}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not-installed"


def _git(rootdir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=rootdir, capture_output=True, text=True, timeout=10
    ).stdout.strip()


def _git_commit(rootdir: Path) -> str:
    """HEAD of the project, marked ``+dirty`` when tracked files differ from it."""
    try:
        sha = _git(rootdir, "rev-parse", "--short=12", "HEAD")
        dirty = _git(rootdir, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "no-git"
    return (sha + ("+dirty" if dirty else "")) if sha else "no-git"


class AutoflSession:
    def __init__(
        self,
        *,
        rootdir: Path,
        benchmarks_dir: Path,
        benchmark: str,
        surface_dir: Path,
        workdir: Path,
        ledger_path: Path,
        progress: Callable[[str], None] = print,
        calibrate: bool = False,
        force: bool = False,
        parallel: int = 1,
        journal: Journal | None = None,
        writes_ledger: bool = True,
        env_name: str = "sim",
        runner_factory: RunnerFactory = CandidateRunner,
    ):
        self.rootdir = rootdir
        self.surface_dir = surface_dir
        self.workdir = workdir
        self.ledger_path = ledger_path
        self.progress = progress
        self.runner_factory = runner_factory
        self.force = force
        self.parallel = parallel  # simulations side by side (``parallel.run_batch``)
        self.recalibrate = calibrate
        self.surface_sha = surface_sha(surface_dir)
        self.contract: Contract = load_contract(benchmarks_dir, benchmark)
        check_pin(self.contract)  # an edited contract is a new campaign, never a silent change
        self.contract_sha_at_start = self.contract.sha
        self.schema: Schema = load_schema(surface_dir)
        self.proposer = BuiltinProposer(
            self.schema, seed=int(self.contract.sha[:8], 16), higher_is_better=self.contract.higher_is_better
        )
        # pytest-xdist: workers share the search through ``journal``; only the controller writes the ledger.
        self.journal = journal
        self.writes_ledger = writes_ledger
        self.env_name = env_name  # where the simulations ran (--autofl-env), recorded in every row
        self.results: list[TrialResult] = []  # this process' trials
        self.rows: list[dict[str, str]] = []  # this run's verdict rows (every worker's, under xdist)
        self.row_ids: list[str] = []  # the ledger rows this process wrote, in order
        self.run_dir = workdir / "runs" / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        self._prior = [r for r in ledger.read_rows(ledger_path) if r["contract_sha"] == self.contract.sha]
        self._flight: list[dict[str, Any]] = []  # other workers' reserved candidates (xdist)
        self._shards: tuple[Path, Split] | None = None
        self.baseline: Incumbent | None = None
        self.incumbent: Incumbent | None = None
        self._set_incumbent()
        self.noise_path = noise.cache_path(workdir, self.contract.sha, self.surface_sha)
        self.noise: NoiseFloor | None = None if calibrate else noise.load(self.noise_path)
        self._started = time.time()

    # -- state ------------------------------------------------------------------------------------------
    def _known_rows(self) -> list[dict[str, str]]:
        return self._prior + self.rows

    def _set_incumbent(self) -> None:
        """The campaign's baseline is its first keep; a keep beats the incumbent of its time, so the latest
        keep is the incumbent."""
        keeps = [r for r in self._known_rows() if r["status"] == KEEP]
        self.baseline = _incumbent_of(keeps[0]) if keeps else None
        self.incumbent = _incumbent_of(keeps[-1]) if keeps else None

    def _sync(self, entries: list[dict[str, Any]]) -> None:
        """Catch up with the other xdist workers: their rows, their reservations, the incumbent, the noise floor."""
        self.rows = journal.rows(entries)
        self._flight = journal.in_flight(entries)
        self._set_incumbent()
        if self.noise is None and self.incumbent is not None:
            self.noise = noise.load(self.noise_path)

    def refresh(self) -> None:
        """Pick up what other workers recorded since the last look (a no-op without xdist)."""
        if self.journal is not None:
            with self.journal.locked() as entries:
                self._sync(entries)

    def history(self) -> list[Tried]:
        """Every candidate tried under this contract (and, under xdist, every one still running elsewhere)."""
        tried = [
            Tried(
                r["candidate_id"],
                json.loads(r["params"]),
                r["status"],
                float(r["score"]) if r["status"] not in (CRASH, INVALID) and r["score"] else None,
                r["patch_sha"],
            )
            for r in self._known_rows()
        ]
        running = [Tried(e["id"], e["params"], "running", None, e["patch_sha"]) for e in self._flight]
        return tried + running

    def shards(self) -> tuple[Path, Split]:
        if self._shards is None:
            self._shards = write_shards(self.contract, self.workdir / "data")
        return self._shards

    def _used_confirm_seeds(self) -> set[int]:
        rows = self._known_rows()
        return {int(s) for r in rows if r["confirm"] for s in json.loads(r["confirm"]).get("seeds", [])}

    def threshold(self) -> float:
        return self.contract.threshold(self.noise.noise if self.noise else 0.0)

    # -- the loop ---------------------------------------------------------------------------------------
    def next_candidate(self) -> Candidate:
        """The proposer's next candidate. Under xdist it is reserved in the journal, so no other worker runs
        it; until a first run has become the incumbent, one candidate runs at a time (it is the baseline)."""
        if self.journal is None:
            return self.proposer.propose(self.history())
        waited = False
        while True:
            with self.journal.locked() as entries:
                self._sync(entries)
                if self.incumbent is not None or not self._flight:
                    candidate = self.proposer.propose(self.history())
                    self.journal.append(
                        journal.RESERVE,
                        id=candidate.id,
                        params=candidate.params,
                        patch_sha=candidate.patch_sha,
                    )
                    return candidate
            if not waited:
                self.progress(f"[autofl] waiting for {self._flight[0]['id']} to become the first incumbent")
                waited = True
            time.sleep(WAIT_SECONDS)

    def _runner(self, candidate: Candidate, trial_dir: Path, label: str, reuse: bool = True) -> Runner:
        """A runner for ``candidate``; unless ``reuse`` is off (or --autofl-force), finished seed runs of the same
        candidate under the same contract and surface are reused instead of repeated."""
        shard_dir, _ = self.shards()
        progress = lambda m: self.progress(f"{label} {m}")  # noqa: E731
        inner = self.runner_factory(
            candidate,
            self.contract,
            self.surface_dir,
            shard_dir,
            trial_dir,
            progress,
        )
        if not reuse or self.force:
            return inner
        key = sha256_of(
            {
                "contract": self.contract.sha,
                "surface": self.surface_sha,
                "candidate": candidate.key,
                "env": self.env_name,
            }
        )
        return ResumingRunner(inner, self.workdir / "finished", key, trial_dir, progress)

    def _calibration_batch(self, runner: Runner) -> list[SeedRun]:
        """A/A runs: the baseline on every selection seed, then a repeat of the first seed (last)."""
        jobs = [(runner, s, "") for s in self.contract.seeds] + [(runner, self.contract.seeds[0], REPEAT)]
        return run_batch(jobs, self.parallel)

    def _measure_noise(self, runs: list[SeedRun], repeat: SeedRun, started: float) -> None:
        """The noise floor from the baseline's spread over the seeds and the repeat (determinism)."""
        if repeat.error is None and repeat.score is not None:
            scores = {r.seed: r.score for r in runs if r.score is not None}
            self.noise = NoiseFloor.measure(scores, repeat.seed, repeat.score, time.monotonic() - started)
            noise.save(self.noise_path, self.noise)
            self.progress(f"[autofl] {self.noise.describe()}; threshold {self.threshold():.4f}")

    def _ensure_noise(self) -> str | None:
        """Measure the noise floor when it is not cached (the baseline rerun is not a ledger row). One process
        measures it; others (xdist workers, parallel sessions) wait for it and read the cache."""
        if self.noise is not None or self.incumbent is None or self.baseline is None:
            return None
        with FileLock(str(self.noise_path) + ".lock"):
            fresh = self.noise_path.is_file() and self.noise_path.stat().st_mtime >= self._started
            if fresh or not self.recalibrate:
                self.noise = noise.load(self.noise_path)
            if self.noise is not None:
                return None
            return self._calibrate_baseline()

    def _calibrate_baseline(self) -> str | None:
        assert self.baseline is not None
        base = self.proposer.make(self.baseline.params)
        runner = self._runner(
            base, self.run_dir / "calibration", "[autofl calibration]", reuse=not self.recalibrate
        )
        started = time.monotonic()
        *runs, repeat = self._calibration_batch(runner)
        failed = next((r.error or "no score" for r in runs + [repeat] if r.error or r.score is None), None)
        if failed:
            return f"calibration failed: {failed}"
        self._measure_noise(runs, repeat, started)
        return None

    def run(self, candidate: Candidate, slot: int) -> TrialResult:
        """Run a candidate seed by seed until its verdict is clear, confirm a keep on fresh seeds, and check
        the fairness invariants. The verdict is decided here; ``record`` writes it."""
        trial_dir = self.run_dir / f"{slot:02d}-{candidate.id}"
        result = TrialResult(slot=slot, candidate=candidate, trial_dir=trial_dir)
        started = time.monotonic()
        label = f"[autofl {slot:02d}] {candidate.id} ({candidate.description})"
        failure = self._ensure_noise()
        runner = self._runner(
            candidate, trial_dir, label, reuse=not (self.incumbent is None and self.recalibrate)
        )
        if failure:
            result.extra_runs.append(SeedRun(seed=self.contract.seeds[0], directory=trial_dir, error=failure))
        elif self.incumbent is None:
            self._run_baseline(runner, result, started)
        else:
            self._run_sequential(runner, result)
        result.runtime_seconds = time.monotonic() - started
        if not result.error:
            self._check_invariants(result)
        return result

    def _run_baseline(self, runner: Runner, result: TrialResult, started: float) -> None:
        *runs, repeat = self._calibration_batch(runner)
        result.runs.extend(runs)
        result.extra_runs.append(repeat)
        if result.error:
            return
        self._measure_noise(runs, repeat, started)
        if self.noise is None:
            return
        result.verdict = Verdict(
            KEEP,
            None,
            f"baseline: becomes the first incumbent; {self.noise.describe()}",
            threshold=self.threshold(),
        )

    def _decide(self, result: TrialResult) -> Verdict:
        self.refresh()  # under xdist, another worker may have found a better incumbent meanwhile
        assert self.incumbent is not None
        inc_comm = self.incumbent.comm_bytes
        cost = result.comm_bytes / inc_comm if result.comm_bytes and inc_comm else None
        inc_time, own_time = self.incumbent.seconds_per_run, result.seconds_per_run
        time_ratio = own_time / inc_time if own_time and inc_time else None
        st = self.contract.statistics
        return decide(
            result.seed_scores,
            self.incumbent.seed_scores,
            threshold=self.threshold(),
            alpha=1 - st["confidence"],
            min_seeds=st["min_seeds"],
            max_seeds=len(self.contract.seeds),
            higher_is_better=self.contract.higher_is_better,
            cost_ratio=cost,
            time_ratio=time_ratio,
            cheaper_ratio=st["cheaper_ratio"],
        )

    def _run_sequential(self, runner: Runner, result: TrialResult) -> None:
        """The first ``min_seeds`` seeds, then one seed per look until the verdict is clear. With room for
        side-by-side runs, later seeds start together with the first ones or with each other (speculatively);
        the looks still take one seed at a time in seed order, so the verdict is the serial one. Runs past the
        deciding look are left out of the row (and reused if a keep needs them)."""
        seeds = self.contract.seeds
        width = max(1, self.parallel)
        first = max(self.contract.min_seeds, min(width, len(seeds)))
        ahead = run_batch([(runner, s, "") for s in seeds[:first]], self.parallel)
        rest = list(seeds[first:])
        result.runs.extend(ahead[: self.contract.min_seeds])
        ahead = ahead[self.contract.min_seeds :]
        if result.error:
            return
        verdict = self._decide(result)
        while verdict.status == NARROW and (ahead or rest):
            if not ahead:
                batch, rest = rest[:width], rest[width:]
                ahead = run_batch([(runner, s, "") for s in batch], self.parallel)
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
        assert self.incumbent is not None
        fresh = self._reserve_confirm_seeds(self.contract.statistics["confirm_per_keep"])
        if len(fresh) < self.contract.statistics["confirm_per_keep"]:
            return replace(
                verdict, status=NARROW, reason=verdict.reason + "; no fresh confirmation seeds left"
            )
        inc = self.proposer.make(self.incumbent.params)
        inc_runner = self._runner(
            inc, result.trial_dir / "incumbent", f"[autofl {result.slot:02d}] incumbent {inc.id}"
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
            self.threshold(),
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

    def _reserve_confirm_seeds(self, count: int) -> list[int]:
        """Fresh seeds no confirmation has used, taken for this one (under xdist: for no other worker)."""
        if self.journal is None:
            used = self._used_confirm_seeds()
            return [s for s in self.contract.confirm_seeds if s not in used][:count]
        with self.journal.locked() as entries:
            self._sync(entries)
            used = self._used_confirm_seeds() | journal.confirm_seeds(entries)
            fresh = [s for s in self.contract.confirm_seeds if s not in used][:count]
            self.journal.append(journal.CONFIRM, seeds=fresh)
        return fresh

    def _check_invariants(self, result: TrialResult) -> None:
        shard_dir, split = self.shards()
        contract_now = load_contract(self.contract.directory.parent, self.contract.name).sha
        result.violations = check(
            self.contract,
            [RunFacts(r.seed, r.audit, r.n_params) for r in result.runs],
            [
                RunFacts(r.seed, r.audit, r.n_params)
                for r in result.extra_runs
                if r.audit or r.score is not None
            ],
            split_sha_seen=shards_sha(self.contract, shard_dir),
            expected_split_sha=split.sha,
            contract_sha_now=contract_now,
            contract_sha_at_start=self.contract_sha_at_start,
            shard_sizes={site: len(idx) for site, idx in split.clients.items()},
        )

    def record(self, result: TrialResult) -> Verdict:
        """Make the trial's ledger row (``result.row``) and move the incumbent on a keep; write the row unless
        this is an xdist worker (the controller writes it). Called once per finished trial."""
        if result.error:
            verdict = Verdict(CRASH, None, result.error)
        elif result.violations and not result.runs:
            verdict = Verdict(INVALID, None, "rejected before running: " + "; ".join(result.violations))
        elif result.violations:
            verdict = Verdict(INVALID, None, "fairness invariant violated: " + "; ".join(result.violations))
        else:
            assert result.verdict is not None
            verdict = result.verdict
        result.verdict = verdict
        incumbent_id = self.incumbent.id if self.incumbent else ""
        self.results.append(result)
        result.row = self._row(result, verdict, incumbent_id)
        if self.journal is None:
            self.rows.append(result.row)
            self._set_incumbent()
        else:
            with self.journal.locked() as entries:
                self._sync([*entries, self.journal.append(journal.ROW, row=result.row)])
        if self.writes_ledger:
            self.write(result.row)
        return verdict

    def write(self, row: dict[str, str]) -> None:
        """Append one verdict row to the ledger (the controller's job under xdist)."""
        ledger.append_row(self.ledger_path, row)
        self.row_ids.append(row["row_id"])

    def receive(self, row: dict[str, str]) -> None:
        """A verdict row from an xdist worker, on the controller: write it once and count it in the summary."""
        if row["row_id"] in self.row_ids:
            return
        self.write(row)
        self.rows.append(row)
        self._set_incumbent()
        if self.noise is None:  # measured by a worker
            self.noise = noise.load(self.noise_path)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.rootdir.resolve()))
        except ValueError:
            return str(path)

    def _row(self, result: TrialResult, verdict: Verdict, incumbent_id: str) -> dict[str, str]:
        changed = changed_knobs(result.candidate.params, self.schema.defaults())
        _, split = self.shards()
        iv = verdict.interval
        clean = verdict.status not in (CRASH, INVALID)
        surface_copy = result.trial_dir / SURFACE_PACKAGE
        confirm_json = (
            json.dumps(
                {
                    "seeds": sorted(result.confirm_scores),
                    "candidate": _rounded(result.confirm_scores),
                    "incumbent": _rounded(result.incumbent_confirm),
                }
            )
            if result.confirm_scores
            else ""
        )
        row: dict[str, Any] = {
            "commit": _git_commit(self.rootdir),
            "score": f"{result.score:.6f}" if result.score is not None and clean else "0.000000",
            "runtime_seconds": f"{result.runtime_seconds:.1f}",
            "budget": self.contract.budget_string(),
            "status": verdict.status,
            "target": "rejected"
            if not result.candidate.params
            else (("knobs: " + ",".join(changed)) if changed else "baseline"),
            "description": result.candidate.description,
            "artifacts": ";".join(
                [self._rel(result.trial_dir)]
                + [self._rel(r.log_path) for r in result.runs + result.extra_runs]
            ),
            "candidate_id": result.candidate.id,
            "params": result.candidate.params_json,
            "seeds": json.dumps(sorted(result.seed_scores)),
            "seed_scores": json.dumps({str(k): v for k, v in _rounded(result.seed_scores).items()}),
            "delta": "" if verdict.delta is None else f"{verdict.delta:+.6f}",
            "ci_low": f"{iv.low:+.6f}" if iv and iv.n > 1 else "",
            "ci_high": f"{iv.high:+.6f}" if iv and iv.n > 1 else "",
            "n_seeds": len(result.seed_scores),
            "noise": f"{self.noise.noise:.6f}" if self.noise else "",
            "threshold": f"{verdict.threshold:.6f}" if verdict.threshold is not None else "",
            "incumbent_id": incumbent_id,
            "reason": verdict.reason,
            "n_params": result.n_params if result.n_params is not None else "",
            "comm_bytes": f"{result.comm_bytes:.0f}" if result.comm_bytes is not None else "",
            "cost_ratio": f"{verdict.cost_ratio:.3f}" if verdict.cost_ratio is not None else "",
            "seconds_per_run": f"{result.seconds_per_run:.1f}" if result.seconds_per_run is not None else "",
            "confirm": confirm_json,
            "contract_sha": self.contract.sha,
            "split_sha": split.sha,
            "surface_sha": surface_sha(surface_copy) if surface_copy.is_dir() else "",
            "patch_sha": result.candidate.patch_sha,
            "benchmark": self.contract.name,
            "env": self.env_name,
            "nvflare_version": _version("nvflare"),
            "torch_version": _version("torch"),
            "timestamp_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "row_id": f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}",
        }
        return {k: str(v) for k, v in row.items()}

    # -- candidate files -----------------------------------------------------------------------------------
    def prior_row(self, candidate: Candidate) -> dict[str, str] | None:
        """The latest clean or invalid ledger row of this knob set under the active contract (crashes may retry)."""
        key = candidate.key
        rows = [
            r
            for r in self._known_rows()
            if r["status"] != CRASH and candidate_key(json.loads(r["params"]), r["patch_sha"]) == key
        ]
        return rows[-1] if rows else None

    def reject(self, name: str, reason: str) -> Verdict:
        """Record a candidate that never ran (malformed file, knob out of bounds) as an ``invalid`` row."""
        candidate = Candidate(params={}, family="rejected", description=name, source="file")
        result = TrialResult(
            slot=len(self.results) + 1,
            candidate=candidate,
            trial_dir=self.run_dir / "rejected",
            violations=[reason],
        )
        return self.record(result)

    # -- exact rerun --------------------------------------------------------------------------------------
    def find_row(self, ident: str) -> dict[str, str]:
        """The ledger row to rerun: by row_id, or the latest row of a candidate_id, under the active contract."""
        rows = ledger.read_rows(self.ledger_path)
        matches = [r for r in rows if ident in (r["row_id"], r["candidate_id"])]
        if not matches:
            known = sorted({r["candidate_id"] for r in rows if ident[:6] in r["candidate_id"]})[:5]
            hint = f"; similar ids: {', '.join(known)}" if known else ""
            raise AutoFLError(
                f"no ledger row with candidate_id or row_id {ident!r} in {self.ledger_path}{hint}"
            )
        row = matches[-1]
        if row["status"] in (CRASH, INVALID) or not row["seed_scores"]:
            raise AutoFLError(f"row {row['row_id']} is {row['status']}: there is no score to reproduce")
        if row["contract_sha"] != self.contract.sha:
            raise AutoFLError(
                f"row {row['row_id']} ran under benchmark {row['benchmark']!r} (contract_sha "
                f"{row['contract_sha'][:12]}), not the active {self.contract.name!r} ({self.contract.sha[:12]}); "
                f"pass --autofl-benchmark {row['benchmark']} (with that contract pinned)"
            )
        return row

    def rerun(self, row: dict[str, str]) -> TrialResult:
        """Run the row's candidate again on exactly its seeds and compare every score with the ledger."""
        candidate = self.proposer.make(json.loads(row["params"]))
        if row["patch_sha"]:
            saved = self.rootdir / row["artifacts"].split(";")[0] / PATCH_FILE
            try:
                files = tuple(sorted(json.loads(saved.read_text()).items()))
            except (OSError, ValueError) as exc:
                raise AutoFLError(
                    f"row {row['row_id']} has a patch, but its saved copy {saved} is unreadable: {exc}"
                ) from None
            candidate = replace(candidate, files=files, family=candidate.family + "+patch")
            if candidate.patch_sha != row["patch_sha"]:
                raise AutoFLError(f"{saved} does not hash to the row's patch_sha {row['patch_sha'][:12]}")
        claimed = {int(k): float(v) for k, v in json.loads(row["seed_scores"]).items()}
        trial_dir = self.run_dir / f"rerun-{candidate.id}"
        result = TrialResult(slot=0, candidate=candidate, trial_dir=trial_dir)
        started = time.monotonic()
        label = f"[autofl rerun] {candidate.id} ({candidate.description})"
        runner = self._runner(candidate, trial_dir, label, reuse=False)  # a rerun exists to run again
        result.runs.extend(run_batch([(runner, s, "") for s in sorted(claimed)], self.parallel))
        result.runtime_seconds = time.monotonic() - started
        if result.error:
            return result
        self._check_invariants(result)
        tolerance = float(self.contract.statistics["rerun_tolerance"])
        for seed, score in sorted(result.seed_scores.items()):
            if abs(score - claimed[seed]) > tolerance:
                result.mismatches.append(
                    f"seed {seed}: {score:.6f} now vs {claimed[seed]:.6f} in the ledger (|d| "
                    f"{abs(score - claimed[seed]):.2g} > tolerance {tolerance:g})"
                )
        now = surface_sha(self.surface_dir)
        if result.mismatches and row["surface_sha"] and row["surface_sha"] != now:
            result.mismatches.append(
                f"the surface changed since that row (surface_sha {row['surface_sha'][:12]} then, {now[:12]} now)"
            )
        return result

    # -- the final report -------------------------------------------------------------------------------
    def test_scores(self) -> dict[str, float] | None:
        """Test-set scores of the baseline and the best, computed once at the end and never used to select.

        None when there is nothing to compare or a run's artifacts are gone (e.g. an older session's)."""
        if self.incumbent is None or self.baseline is None:
            return None
        out: dict[str, float] = {}
        for name, inc in (("baseline", self.baseline), ("best", self.incumbent)):
            trial = self.rootdir / inc.artifacts
            models = [
                {
                    "arch": inc.params.get("arch", "mlp"),
                    "seed": s,
                    "path": str(SeedRun(s, trial / f"seed-{s}").model_path),
                }
                for s in self.contract.seeds
            ]
            if not all(Path(m["path"]).is_file() for m in models):
                return None
            self.run_dir.mkdir(parents=True, exist_ok=True)
            scored = evaluate_models(self.contract, trial, models, "test", self.run_dir, tag=f"-{name}")
            out[name] = sum(float(e["score"]) for e in scored) / len(scored)
        (self.run_dir / "final_test.json").write_text(
            json.dumps(
                {
                    "baseline": self.baseline.id,
                    "best": self.incumbent.id,
                    "test_scores": out,
                    "contract_sha": self.contract.sha,
                },
                indent=1,
            )
        )
        return out
