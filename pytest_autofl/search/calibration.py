"""The contract's noise floor, cached per contract and surface: measured by A/A runs of the baseline (every
selection seed, then a repeat of the first), by one process while the others wait for the cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from pytest_autofl.core import noise
from pytest_autofl.core.contract import Contract
from pytest_autofl.core.noise import NoiseFloor
from pytest_autofl.run.parallel import run_batch
from pytest_autofl.run.runner import Runner
from pytest_autofl.run.seedrun import SeedRun

REPEAT = "-repeat"  # tag of the A/A repeat of the first seed


class Calibration:
    def __init__(
        self,
        contract: Contract,
        workdir: Path,
        surface_sha: str,
        recalibrate: bool,
        parallel: int,
        progress: Callable[[str], None],
    ):
        self.contract, self.recalibrate, self.parallel, self.progress = (
            contract,
            recalibrate,
            parallel,
            progress,
        )
        self.path = noise.cache_path(workdir, contract.sha, surface_sha)
        self.noise: NoiseFloor | None = None if recalibrate else noise.load(self.path)
        self._started = time.time()

    def threshold(self) -> float:
        return self.contract.threshold(self.noise.noise if self.noise else 0.0)

    def describe(self) -> str | None:
        return f"{self.noise.describe()}; threshold {self.threshold():.4f}" if self.noise else None

    def reload(self) -> None:
        """Pick up a floor another process measured (an xdist worker, seen from the controller)."""
        if self.noise is None:
            self.noise = noise.load(self.path)

    def batch(self, runner: Runner) -> list[SeedRun]:
        """A/A runs: the baseline on every selection seed, then a repeat of the first seed (last)."""
        seeds = self.contract.seeds
        return run_batch([(runner, s, "") for s in seeds] + [(runner, seeds[0], REPEAT)], self.parallel)

    def measure(self, runs: list[SeedRun], repeat: SeedRun, started: float) -> None:
        """The floor from the baseline's spread over the seeds and the repeat (determinism)."""
        if repeat.error is None and repeat.score is not None:
            scores = {r.seed: r.score for r in runs if r.score is not None}
            self.noise = NoiseFloor.measure(scores, repeat.seed, repeat.score, time.monotonic() - started)
            noise.save(self.path, self.noise)
            self.progress(f"[autofl] {self.describe()}")

    def ensure(self, has_baseline: bool, baseline_runner: Callable[[], Runner]) -> str | None:
        """Make sure the floor is known once a baseline exists: from the cache, or by running the baseline
        again (not a ledger row). The reason it failed, or None."""
        if self.noise is not None or not has_baseline:
            return None
        with FileLock(str(self.path) + ".lock"):
            fresh = self.path.is_file() and self.path.stat().st_mtime >= self._started
            if fresh or not self.recalibrate:
                self.noise = noise.load(self.path)
            if self.noise is not None:
                return None
            started = time.monotonic()
            *runs, repeat = self.batch(baseline_runner())
            failed = next(
                (r.error or "no score" for r in runs + [repeat] if r.error or r.score is None), None
            )
            if failed:
                return f"calibration failed: {failed}"
            self.measure(runs, repeat, started)
            return None
