"""Seed runs side by side. Each run stays a separate, real NVFlare simulation in its own process tree and
directory; running several at once only fills the cores that FLARE's start-up and polling leave idle.

Batches: calibration, the first ``min_seeds`` seeds, the seeds a keep must complete, both sides of a
confirmation — all needed — and selection seeds beyond ``min_seeds`` started ahead of need, which are looked
at one at a time in seed order (``search.protocol``). So the verdicts and ledger rows are exactly
those of a serial run; only compute is spent ahead of need.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from pytest_autofl.run.processes import STOP
from pytest_autofl.run.runner import Runner
from pytest_autofl.run.seedrun import SeedRun

Job = tuple[Runner, int, str]  # (runner, seed, tag)


def run_batch(jobs: Sequence[Job], parallel: int) -> list[SeedRun]:
    """Run ``jobs`` at most ``parallel`` at a time; results in job order. On Ctrl-C (or any error) every
    running tree is stopped before the exception leaves this function."""
    if parallel <= 1 or len(jobs) <= 1:
        return [runner.run(seed, tag) for runner, seed, tag in jobs]
    STOP.clear()
    with ThreadPoolExecutor(max_workers=min(parallel, len(jobs)), thread_name_prefix="autofl-seed") as pool:
        futures = [pool.submit(runner.run, seed, tag, False) for runner, seed, tag in jobs]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f.exception() for f in futures if f in done and f.exception()), None)
            if failed is not None:
                raise failed
            runs = [f.result() for f in futures]
        except BaseException:
            STOP.set()
            for f in futures:
                f.cancel()
            wait(futures)
            STOP.clear()  # every tree of this batch is stopped; what runs next (the final report) may run
            raise
    # One evaluator process per runner for the whole batch, instead of one per run.
    by_runner: dict[int, tuple[Runner, list[SeedRun]]] = {}
    for (runner, _, _), run in zip(jobs, runs, strict=True):
        by_runner.setdefault(id(runner), (runner, []))[1].append(run)
    for runner, its_runs in by_runner.values():
        runner.evaluate(its_runs)
    return runs
