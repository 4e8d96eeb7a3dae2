"""What the per-round validation curves cost: the same real NVFlare seed runs with the harness' round-model
filter and the per-round scoring, and without them.

    python benchmarks/curve_cost.py [--benchmark digits] [--repeats 3]

Each repeat runs the baseline on the contract's first two seeds once with curves and once without
(alternating which goes first), each in a fresh trial directory in the sandbox, then scores the runs; prints
the wall seconds of the simulations and of the scoring per seed run in each mode, the overhead of the
curves on a seed run (simulation + scoring), and checks the final scores are identical.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from scratch import scratch_search

import pytest_autofl.run.runner as runner_module
from pytest_autofl.search.campaign import Search

_SEED_SPEC = runner_module.seed_spec


def _without_curves(*args: Any, **kwargs: Any) -> dict[str, Any]:
    spec = _SEED_SPEC(*args, **kwargs)
    spec.pop("rounds_dir")  # no round-model filter in the exported job, no round models to score
    return spec


def one(search: Search, curves: bool, trial_dir: Path) -> tuple[list[float], float, dict[int, float]]:
    """Seconds of each simulation, seconds of scoring them, and the final scores."""
    runner_module.seed_spec = _SEED_SPEC if curves else _without_curves
    try:
        runner = search.runner_for(search.factory.make({}), trial_dir, "[curve cost]", reuse=False)
        runs = [runner.run(seed, evaluate=False) for seed in search.contract.seeds[:2]]
    finally:
        runner_module.seed_spec = _SEED_SPEC
    started = time.monotonic()
    runner.evaluate(runs)
    scoring = time.monotonic() - started
    assert all(r.error is None for r in runs), [r.error for r in runs]
    middles = [
        (r.curve or [None, None])[1:-1] for r in runs
    ]  # without the filter: no round models, no points
    assert all((None not in m) if curves else m == [None] * len(m) for m in middles), middles
    return [r.runtime_seconds for r in runs], scoring, {r.seed: float(r.score or 0) for r in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autofl-curve-cost-") as tmp:
        search = scratch_search(Path(tmp), args.benchmark, force=True, sandbox="auto")
        sims: dict[bool, list[float]] = {True: [], False: []}
        scoring: dict[bool, list[float]] = {True: [], False: []}
        scores: dict[bool, dict[int, float]] = {}
        for repeat in range(args.repeats):
            for curves in (True, False) if repeat % 2 == 0 else (False, True):
                seconds, scored, scores[curves] = one(search, curves, Path(tmp) / f"{repeat}-{curves}")
                sims[curves] += seconds
                scoring[curves].append(scored / len(seconds))
                print(
                    f"repeat {repeat} curves={curves}: simulations {seconds}, scoring {scored:.2f} s",
                    flush=True,
                )
    assert scores[True] == scores[False], scores
    rounds = search.contract.rounds
    print(
        f"\n{args.benchmark}: {rounds} rounds, {len(sims[True])} seed runs per mode, sandbox {search.sandbox.mode}"
    )
    total = {}
    for curves in (False, True):
        sim, score = statistics.mean(sims[curves]), statistics.mean(scoring[curves])
        spread = statistics.stdev(sims[curves]) if len(sims[curves]) > 1 else 0.0
        total[curves] = sim + score
        name = "with curves   " if curves else "without curves"
        print(f"{name}: simulation {sim:.2f} s (sd {spread:.2f}), scoring {score:.2f} s per seed run")
    print(f"overhead of the curves per seed run: {100 * (total[True] / total[False] - 1):+.1f}%")
    print("final scores identical with and without curves:", scores[True] == scores[False])


if __name__ == "__main__":
    main()
