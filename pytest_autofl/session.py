"""The per-run object the plugin keeps in ``config.stash``: contract, proposer, results and the verdict pass.

It knows nothing of pytest: the plugin hands it a progress callback and calls ``next_candidate``, ``run`` and
``record`` from its hooks, so the whole search loop is testable as plain Python.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from . import ledger
from .candidate import Candidate, changed_knobs
from .contract import Contract, check_pin, load_contract
from .data import Split, shards_sha, write_shards
from .invariants import RunFacts, check
from .proposer import BuiltinProposer, Tried
from .runner import SeedRun, evaluate_models, run_candidate, surface_sha
from .schema import Schema, load_schema
from .verdict import CRASH, INVALID, KEEP, Verdict, decide


@dataclass
class TrialResult:
    slot: int
    candidate: Candidate
    trial_dir: Path
    runs: list[SeedRun] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    runtime_seconds: float = 0.0
    verdict: Verdict | None = None

    @property
    def error(self) -> str | None:
        return next((r.error for r in self.runs if r.error), None)

    @property
    def seed_scores(self) -> dict[int, float]:
        return {r.seed: r.score for r in self.runs if r.score is not None}

    @property
    def score(self) -> float | None:
        scores = list(self.seed_scores.values())
        return sum(scores) / len(scores) if scores and not self.error else None

    @property
    def n_params(self) -> int | None:
        return next((r.n_params for r in self.runs if r.n_params is not None), None)

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


def _incumbent_of(row: dict[str, str]) -> Incumbent:
    return Incumbent(
        row["candidate_id"],
        float(row["score"]),
        {int(k): float(v) for k, v in json.loads(row["seed_scores"]).items()},
        row["artifacts"].split(";")[0],
        json.loads(row["params"]),
    )


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
    ):
        self.rootdir = rootdir
        self.surface_dir = surface_dir
        self.workdir = workdir
        self.ledger_path = ledger_path
        self.progress = progress
        self.contract: Contract = load_contract(benchmarks_dir, benchmark)
        check_pin(self.contract)  # an edited contract is a new campaign, never a silent change
        self.contract_sha_at_start = self.contract.sha
        self.schema: Schema = load_schema(surface_dir)
        self.proposer = BuiltinProposer(
            self.schema, seed=int(self.contract.sha[:8], 16), higher_is_better=self.contract.higher_is_better
        )
        self.results: list[TrialResult] = []
        self.run_dir = workdir / "runs" / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        self._prior = [r for r in ledger.read_rows(ledger_path) if r["contract_sha"] == self.contract.sha]
        self._shards: tuple[Path, Split] | None = None
        keeps = [
            r
            for r in self._prior
            if r["status"] == KEEP and r["seeds"] == json.dumps(list(self.contract.seeds))
        ]
        # The campaign's baseline is its first keep; a keep beats the incumbent of its time, so the latest
        # keep is the incumbent.
        self.baseline = _incumbent_of(keeps[0]) if keeps else None
        self.incumbent = _incumbent_of(keeps[-1]) if keeps else None

    # -- state ------------------------------------------------------------------------------------------
    def history(self) -> list[Tried]:
        past = [
            Tried(
                r["candidate_id"],
                json.loads(r["params"]),
                r["status"],
                float(r["score"]) if r["status"] not in (CRASH, INVALID) and r["score"] else None,
            )
            for r in self._prior
        ]
        now = [Tried(t.candidate.id, t.candidate.params, t.status, t.score) for t in self.results]
        return past + now

    def shards(self) -> tuple[Path, Split]:
        if self._shards is None:
            self._shards = write_shards(self.contract, self.workdir / "data")
        return self._shards

    # -- the loop ---------------------------------------------------------------------------------------
    def next_candidate(self) -> Candidate:
        return self.proposer.propose(self.history())

    def run(self, candidate: Candidate, slot: int) -> TrialResult:
        shard_dir, split = self.shards()
        trial_dir = self.run_dir / f"{slot:02d}-{candidate.id}"
        result = TrialResult(slot=slot, candidate=candidate, trial_dir=trial_dir)
        started = time.monotonic()
        label = f"[autofl {slot:02d}] {candidate.id} ({candidate.description})"
        result.runs = run_candidate(
            candidate,
            self.contract,
            self.surface_dir,
            shard_dir,
            trial_dir,
            lambda msg: self.progress(f"{label} {msg}"),
        )
        result.runtime_seconds = time.monotonic() - started
        if not result.error:
            contract_now = load_contract(self.contract.directory.parent, self.contract.name).sha
            result.violations = check(
                self.contract,
                [RunFacts(r.seed, r.audit, r.n_params) for r in result.runs],
                split_sha_seen=shards_sha(self.contract, shard_dir),
                expected_split_sha=split.sha,
                contract_sha_now=contract_now,
                contract_sha_at_start=self.contract_sha_at_start,
                shard_sizes={site: len(idx) for site, idx in split.clients.items()},
            )
        return result

    def record(self, result: TrialResult) -> Verdict:
        """Decide the verdict, append the ledger row, update the incumbent. Called once per finished trial."""
        if result.error:
            verdict = Verdict(CRASH, None, result.error)
        elif result.violations:
            verdict = Verdict(INVALID, None, "fairness invariant violated: " + "; ".join(result.violations))
        else:
            verdict = decide(
                result.seed_scores,
                self.incumbent.seed_scores if self.incumbent else None,
                self.contract.min_delta,
                self.contract.higher_is_better,
            )
        result.verdict = verdict
        incumbent_id = self.incumbent.id if self.incumbent else ""
        self.results.append(result)
        self._append(result, verdict, incumbent_id)
        if verdict.status == KEEP and result.score is not None:
            self.incumbent = Incumbent(
                result.candidate.id,
                result.score,
                result.seed_scores,
                self._rel(result.trial_dir),
                result.candidate.params,
            )
            if self.baseline is None:
                self.baseline = self.incumbent
        return verdict

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.rootdir.resolve()))
        except ValueError:
            return str(path)

    def _append(self, result: TrialResult, verdict: Verdict, incumbent_id: str) -> None:
        changed = changed_knobs(result.candidate.params, self.schema.defaults())
        _, split = self.shards()
        ledger.append_row(
            self.ledger_path,
            {
                "commit": _git_commit(self.rootdir),
                "score": f"{result.score:.6f}"
                if result.score is not None and verdict.status not in (CRASH, INVALID)
                else "0.000000",
                "runtime_seconds": f"{result.runtime_seconds:.1f}",
                "budget": self.contract.budget_string(),
                "status": verdict.status,
                "target": ("knobs: " + ",".join(changed)) if changed else "baseline",
                "description": result.candidate.description,
                "artifacts": ";".join(
                    [self._rel(result.trial_dir)] + [self._rel(r.log_path) for r in result.runs]
                ),
                "candidate_id": result.candidate.id,
                "params": result.candidate.params_json,
                "seeds": json.dumps(list(self.contract.seeds)),
                "seed_scores": json.dumps({str(k): round(v, 6) for k, v in result.seed_scores.items()}),
                "delta": "" if verdict.delta is None else f"{verdict.delta:+.6f}",
                "incumbent_id": incumbent_id,
                "reason": verdict.reason,
                "n_params": result.n_params if result.n_params is not None else "",
                "contract_sha": self.contract.sha,
                "split_sha": split.sha,
                "surface_sha": surface_sha(result.trial_dir)
                if (result.trial_dir / "autofl_surface").is_dir()
                else "",
                "benchmark": self.contract.name,
                "nvflare_version": _version("nvflare"),
                "torch_version": _version("torch"),
                "timestamp_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "row_id": f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}",
            },
        )

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
