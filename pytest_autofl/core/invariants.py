"""Fairness invariants: what every candidate run must have kept equal, checked from what the run actually did.

Facts come from the harness (seeds it launched, the shard files on disk, the audit filter in the FLARE server,
the evaluator's parameter count, the contract file re-hashed now), never from candidate-written metrics.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_autofl.core.contract import Contract


@dataclass(frozen=True)
class RunFacts:
    seed: int
    audit: list[dict[str, Any]]
    n_params: int | None
    initial: dict[str, Any] | None = (
        None  # the untrained model, as the evaluator saw it: score, chance, digest
    )
    # the trainers' CPU seconds per site and task, measured by the harness' meter outside the candidate's reach
    task_seconds: dict[str, list[float]] | None = None
    twin_seconds: dict[str, list[float]] | None = None  # a code change's: the unchanged surface's, beside it
    metered: bool = False
    digest: str | None = None  # of the final model's outputs
    error: str | None = None


def site_step_budget(contract: Contract, shard_sizes: dict[str, int]) -> dict[str, int]:
    """Local steps a site may take per round: its epochs over its shard, capped by max_local_steps."""
    b = contract.budget
    return {
        site: min(b["local_epochs"] * math.ceil(n / b["batch_size"]), b["max_local_steps"])
        for site, n in shard_sizes.items()
    }


def fairness_violations(
    contract: Contract,
    runs: list[RunFacts],
    extra_runs: Sequence[RunFacts] = (),
    *,
    shard_problems: Sequence[str],
    contract_sha_now: str,
    contract_sha_at_start: str,
    shard_sizes: dict[str, int],
    twinned: bool = False,
    control: RunFacts | None = None,
    model_changed: bool = True,
) -> list[str]:
    """Every violated invariant, each as '<invariant>: <what happened>'; [] means the run was fair.
    ``twinned``: a code change, whose measured compute is held to its twins'; ``control``:
    a code change's zero-update control run; ``model_changed``: the candidate replaces ``model.py`` (only then
    can its untrained start carry weights from elsewhere)."""
    out = []
    seeds, pool = [r.seed for r in runs], list(contract.seeds)
    if not (contract.min_seeds <= len(seeds) and seeds == pool[: len(seeds)]):
        out.append(
            f"same seeds: ran {seeds}, the contract fixes the first {contract.min_seeds} or more of {pool}, in order"
        )
    fresh = set(contract.confirm_seeds)
    strays = [r.seed for r in extra_runs if r.seed not in fresh and r.seed not in seeds]
    if strays:
        out.append(
            f"same seeds: extra runs on seeds {strays} that are neither selection nor confirmation seeds"
        )
    out += [f"same data: {problem}" for problem in shard_problems]
    if contract_sha_now != contract_sha_at_start:
        out.append(
            f"contract unchanged: contract_sha moved from {contract_sha_at_start[:12]} to "
            f"{contract_sha_now[:12]} during the run"
        )
    budget = site_step_budget(contract, shard_sizes)
    for run in [*runs, *extra_runs]:
        out += _run_violations(contract, run, budget)
    out += compute_violations(contract, [*runs, *extra_runs], twinned)
    out += control_violations(control) if control is not None else []
    return out + _start_violations([*runs, *extra_runs], contract.higher_is_better, model_changed)


# A trainer's windows, in order: its script's start-up, its first task, and every later task.
WINDOWS = ("start-up", "first", "later")
_WHAT = {
    "start-up": "start-up (the script before it asks for a task)",
    "first": "first task",
    "later": "later task",
}


def twin_ratios(runs: Sequence[RunFacts]) -> tuple[dict[str, list[float]], list[str]]:
    """Each measured window's CPU over its twin's, the start-ups, first tasks and later ones apart
    (``WINDOWS``); and each site whose windows and twin's do not pair up."""
    ratios: dict[str, list[float]] = {which: [] for which in WINDOWS}
    unpaired = []
    for run in (r for r in runs if r.task_seconds):
        for site, tasks in sorted((run.task_seconds or {}).items()):
            twin = (run.twin_seconds or {}).get(site, [])
            if len(twin) != len(tasks):
                unpaired.append(
                    f"measured compute (seed {run.seed}, {site}): {len(tasks)} windows measured, the unchanged "
                    f"surface's twin beside it {len(twin)}: nothing to hold them to"
                )
                continue
            for index, (own, ref) in enumerate(zip(tasks, twin, strict=True)):
                if ref > 0:
                    ratios[WINDOWS[min(index, len(WINDOWS) - 1)]].append(own / ref)
    return ratios, unpaired


def compute_violations(contract: Contract, runs: Sequence[RunFacts], twinned: bool) -> list[str]:
    """The budget the harness measures, not the one the candidate reports: the trainers' CPU seconds in each
    window (every thread of the client script's process; it may start no other), each beside its twin's — the
    unchanged surface with the same knobs, in the same moments — and the median of those ratios over the runs'
    sites at most ``max_cpu_ratio``. The script's start-up, its first task and its later tasks are judged
    apart (``WINDOWS``), so extra work in any one shows, undiluted by the others. A metered run with no
    windows had its meter stopped; a code change's run without its twin's windows has nothing to be held to:
    both fail."""
    out = [
        f"measured compute (seed {r.seed}): the harness' CPU meter reported nothing; it was stopped from inside the run"
        for r in runs
        if r.metered and not r.task_seconds
    ]
    if not twinned:
        return out
    ratios, unpaired = twin_ratios(runs)
    out += unpaired
    cap = contract.max_cpu_ratio
    for which in reversed(WINDOWS):
        if ratios[which] and (ratio := statistics.median(ratios[which])) > cap:
            out.append(
                f"measured compute: {ratio:.2f}x the unchanged surface's CPU per {_WHAT[which]}, the median of "
                f"{len(ratios[which])} windows each measured beside its twin (cap {cap:g}x): local work beyond "
                "the budget, whatever the clients report"
            )
    return out


def control_violations(control: RunFacts) -> list[str]:
    """The zero-update control: the candidate's server with harness clients that send only zeros must end
    with the model it started from (its outputs unchanged, bit for bit). A moved model carries weights no
    client trained: injected by the server code."""
    what = f"zero-update control (seed {control.seed})"
    if control.error:
        return [f"{what}: the run with harness clients that send only zeros failed: {control.error}"]
    if control.initial is None or control.digest is None:
        return [f"{what}: its final model was not scored"]
    if control.digest != control.initial["digest"]:
        return [
            f"{what}: the server's model moved although every client sent zeros (untrained "
            f"{float(control.initial['score']):.3f}): weights no client trained were put in by the server code"
        ]
    return []


def _start_violations(runs: Sequence[RunFacts], higher_is_better: bool, model_changed: bool) -> list[str]:
    """Training starts from an untrained model, and the harness' seed decides it: a changed ``model.py`` whose
    initial model already scores past halfway from chance to perfect carries weights trained elsewhere (the
    surface's own model.py is the user's code: its random start may rank well, e.g. AUROC on separable data);
    identical initial models for different seeds mean the seed is ignored (the seeds are no longer
    independent)."""
    out, seeds_of = [], defaultdict(set)
    perfect = 1.0 if higher_is_better else 0.0
    for run in runs:
        if run.initial is None:
            continue
        start, chance = float(run.initial["score"]), float(run.initial["chance"])
        cap = chance + (perfect - chance) / 2
        if model_changed and (start > cap if higher_is_better else start < cap):
            out.append(
                f"untrained start (seed {run.seed}): the initial model scores {start:.3f} before any training, "
                f"past {cap:.3f} (halfway from chance {chance:.3f} to perfect): weights not trained under the contract"
            )
        seeds_of[str(run.initial["digest"])].add(run.seed)
    out += [
        f"seed used (seeds {sorted(seeds)}): the initial models of different seeds are identical: the model "
        "ignores the harness' seed"
        for seeds in seeds_of.values()
        if len(seeds) > 1
    ]
    return out


def _run_violations(contract: Contract, run: RunFacts, budget: dict[str, int]) -> list[str]:
    """What one seed run's audit and parameter count break: rounds, local steps, empty updates, the cap."""
    out = []
    sites = sorted(budget)
    by_round: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for rec in run.audit:
        if isinstance(rec.get("round"), int):
            by_round[rec["round"]][str(rec.get("site"))] = rec
    complete = [r for r, got in by_round.items() if sorted(got) == sites]
    if len(complete) != contract.rounds:
        out.append(
            f"rounds completed (seed {run.seed}): {len(complete)} rounds with an update from every "
            f"client, the contract fixes {contract.rounds}"
        )
    for rnd, got in sorted(by_round.items()):
        for site, rec in sorted(got.items()):
            steps = rec.get("steps")
            if not isinstance(steps, int) or steps > budget.get(site, -1):
                out.append(
                    f"local steps (seed {run.seed}, round {rnd}, {site}): reported {steps!r}, "
                    f"budget {budget.get(site)}"
                )
            if not rec.get("tensors"):
                out.append(
                    f"non-empty update (seed {run.seed}, round {rnd}, {site}): the server received "
                    "no parameters (numpy params are dropped by the PyTorch Client API)"
                )
    if run.n_params is None or run.n_params > contract.budget["max_model_params"]:
        out.append(
            f"parameter count (seed {run.seed}): {run.n_params}, cap {contract.budget['max_model_params']}"
        )
    return out
