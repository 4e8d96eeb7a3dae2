"""A finished trial as its ledger row: the verdict it gets (crash and invalid win over the statistics) and the
provenance that makes the row reproducible (commit, versions, hashes, where it ran)."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_autofl.core.candidate import changed_knobs
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.verdict import CRASH, INVALID, LITERATURE, Verdict
from pytest_autofl.ledger.row import Row
from pytest_autofl.literature.review import SOURCE, Review
from pytest_autofl.run import infrastructure
from pytest_autofl.run.surface import SURFACE_PACKAGE, surface_sha
from pytest_autofl.search.trial import TrialResult


def verdict_of(result: TrialResult) -> Verdict:
    if result.tampered:
        return Verdict(INVALID, None, "fairness invariant violated: harness' job intact: " + result.tampered)
    if result.error:
        return Verdict(CRASH, None, result.error)
    if result.violations and not result.runs:
        return Verdict(INVALID, None, "rejected before running: " + "; ".join(result.violations))
    if result.violations:
        return Verdict(INVALID, None, "fairness invariant violated: " + "; ".join(result.violations))
    assert result.verdict is not None
    return result.verdict


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not-installed"


def _git(rootdir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=rootdir, capture_output=True, text=True, timeout=10
    ).stdout.strip()


def git_commit(rootdir: Path) -> str:
    """HEAD of the project, marked ``+dirty`` when tracked files differ from it."""
    try:
        sha = _git(rootdir, "rev-parse", "--short=12", "HEAD")
        dirty = _git(rootdir, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "no-git"
    return (sha + ("+dirty" if dirty else "")) if sha else "no-git"


def _confirmation(result: TrialResult) -> dict[str, Any] | None:
    """The ``confirm`` column: the fresh seeds and both candidates' scores on them (keeps only)."""
    if not result.confirm_scores:
        return None
    return {
        "seeds": sorted(result.confirm_scores),
        "candidate": {str(k): v for k, v in _rounded(result.confirm_scores).items()},
        "incumbent": {str(k): v for k, v in _rounded(result.incumbent_confirm).items()},
    }


def _rounded(scores: dict[int, float]) -> dict[int, float]:
    return {k: round(v, 6) for k, v in sorted(scores.items())}


@dataclass
class Provenance:
    """What every row of a session ran under. ``commit`` is the project's git commit when the session recorded
    its first row (the harness' code is loaded once; surface edits show in ``surface_sha``)."""

    rootdir: Path
    contract: Contract
    defaults: dict[str, object]
    env: str
    sandbox: str
    commit: str | None = None

    def _commit(self) -> str:
        if self.commit is None:
            self.commit = git_commit(self.rootdir)
        return self.commit

    def relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.rootdir.resolve()))
        except ValueError:
            return str(path)

    def _stamp(self) -> dict[str, Any]:
        """The columns every row of this session shares."""
        return {
            "commit": self._commit(),
            "nvflare_version": _version("nvflare"),
            "torch_version": _version("torch"),
            "timestamp_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "row_id": f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}",
        }

    def event_row(self, review: Review, sheet: Path, reason: str, seconds: float, split_sha: str) -> Row:
        """A literature review's row: no score (as the reference's), the worksheet as its target."""
        card = review.card
        return Row(
            status=LITERATURE,
            candidate_id=review.event,
            params={},
            description=f"literature review: {'; '.join(review.symptoms) or 'plateau'}; selected {card.id} "
            f"({card.method}: faithful, variant, ablation)",
            target=self.relative(sheet),
            budget="literature_loop",
            score=None,
            runtime_seconds=seconds,
            artifacts=(self.relative(sheet),),
            seed_scores={},
            reason=reason,
            contract_sha=self.contract.sha,
            split_sha=split_sha,
            benchmark=self.contract.name,
            env=self.env,
            proposer="literature",
            source=SOURCE + card.id,
            cites=(card.citation,),
            sandbox=self.sandbox,
            event=review.event,
            **self._stamp(),
        )

    def row(
        self, result: TrialResult, verdict: Verdict, incumbent_id: str, noise: float | None, split_sha: str
    ) -> Row:
        candidate, iv = result.candidate, verdict.interval
        changed = changed_knobs(candidate.params, self.defaults)
        surface_copy = result.trial_dir / SURFACE_PACKAGE
        confirm = _confirmation(result)
        return Row(
            status=verdict.status,
            candidate_id=candidate.id,
            params=candidate.params,
            description=candidate.description,
            target="rejected"
            if not candidate.params
            else (("knobs: " + ",".join(changed)) if changed else "baseline"),
            budget=self.contract.budget_string(),
            score=result.score,
            runtime_seconds=result.runtime_seconds,
            artifacts=tuple(
                [self.relative(result.trial_dir)]
                + [self.relative(r.log_path) for r in [*result.screen_runs, *result.runs, *result.extra_runs]]
            ),
            seed_scores=_rounded(result.seed_scores),
            reason=verdict.reason,
            contract_sha=self.contract.sha,
            split_sha=split_sha,
            benchmark=self.contract.name,
            env=self.env,
            delta=verdict.delta,
            ci_low=iv.low if iv and iv.n > 1 else None,
            ci_high=iv.high if iv and iv.n > 1 else None,
            noise=noise,
            threshold=verdict.threshold,
            incumbent_id=incumbent_id,
            n_params=result.n_params,
            comm_bytes=result.comm_bytes,
            cost_ratio=verdict.cost_ratio,
            seconds_per_run=result.seconds_per_run,
            cpu_seconds=result.cpu_seconds,
            cost=candidate.cost,
            event=candidate.event,
            screen_score=result.screen.score if result.screen is not None else None,
            screen_incumbent=result.screen_incumbent,
            confirm=confirm,
            curves=result.curves or None,
            retry_reasons=tuple(result.retries),
            recovered=result.recovered,
            infra=infrastructure.fingerprint(),
            surface_sha=surface_sha(surface_copy) if surface_copy.is_dir() else "",
            patch_sha=candidate.patch_sha,
            proposer=candidate.proposer,
            source=candidate.source,
            cites=candidate.cites,
            sandbox=self.sandbox,
            **self._stamp(),
        )
