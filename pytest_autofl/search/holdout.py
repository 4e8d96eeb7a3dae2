"""The held-out test score of the baseline and the best kept candidate: computed once, at the end of a
session, by the harness' evaluator, and never used to select anything."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_autofl.core.contract import Contract
from pytest_autofl.data.datasets import task_of
from pytest_autofl.ledger.row import Row
from pytest_autofl.run.evaluator import evaluate_models
from pytest_autofl.run.sandbox import NO_SANDBOX, Sandbox
from pytest_autofl.run.seedrun import SeedRun
from pytest_autofl.run.surface import model_entry


def final_test_scores(
    contract: Contract,
    baseline: Row | None,
    best: Row | None,
    rootdir: Path,
    run_dir: Path,
    sandbox: Sandbox = NO_SANDBOX,
) -> dict[str, float] | None:
    """Mean test score per side, also written to ``<run_dir>/final_test.json``; None when there is nothing to
    compare or a run's artifacts are gone (e.g. an older session's). RuntimeError if the evaluator fails."""
    if baseline is None or best is None:
        return None
    out: dict[str, float] = {}
    for name, row in (("baseline", baseline), ("best", best)):
        trial = rootdir / row.trial_dir
        paths = {s: SeedRun(s, trial / f"seed-{s}").model_path for s in contract.seeds}
        if not all(p.is_file() for p in paths.values()):
            return None
        run_dir.mkdir(parents=True, exist_ok=True)
        models = [model_entry(row.params, s, p, task_of(contract)) for s, p in paths.items()]
        scored = evaluate_models(contract, trial, models, "test", run_dir, f"-{name}", sandbox)
        out[name] = sum(float(e["score"]) for e in scored) / len(scored)
    facts = {"baseline": baseline.candidate_id, "best": best.candidate_id, "test_scores": out}
    (run_dir / "final_test.json").write_text(json.dumps({**facts, "contract_sha": contract.sha}, indent=1))
    return out
