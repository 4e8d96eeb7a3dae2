"""A runner whose scores are scripted: the session's logic at milliseconds per candidate, without NVFlare."""

from __future__ import annotations

import json

from pytest_autofl.core.contract import site_names
from pytest_autofl.core.progress import Round
from pytest_autofl.run.job import CONTROL_TAG
from pytest_autofl.run.seedrun import SeedRun
from pytest_autofl.run.surface import PATCH_FILE


class Scripted:
    """A runner whose score is base[seed] + effect[description] (+ jitter for the determinism repeat)."""

    calls: list[tuple[str, int, str]] = []
    effects: dict[str, float] = {}
    seed_effects: dict[str, dict[int, float]] = {}  # a gain that differs by seed: inconclusive at first
    crash: set[str] = set()
    injected: set[str] = set()  # a server that moves the model in the zero-update control

    patched: list[tuple[str, int]] = []  # (patch_sha, seed) of every run of a code change

    def __init__(self, candidate, contract, surface_dir, shard_dir, trial_dir, progress):
        self.candidate, self.contract, self.trial_dir = candidate, contract, trial_dir
        self.progress = progress
        if candidate.files:  # as the real runner saves it with the artifacts
            trial_dir.mkdir(parents=True, exist_ok=True)
            (trial_dir / PATCH_FILE).write_text(json.dumps(dict(candidate.files)))

    def run(self, seed: int, tag: str = "", evaluate: bool = True) -> SeedRun:
        Scripted.calls.append((self.candidate.description, seed, tag))
        if self.candidate.files:
            Scripted.patched.append((self.candidate.patch_sha, seed))
        run = SeedRun(seed=seed, directory=self.trial_dir / f"seed-{seed}{tag}", n_params=8970)
        if self.candidate.description in Scripted.crash:
            run.error = f"seed {seed}: scripted crash"
            return run
        if tag == CONTROL_TAG:  # the zero-update control: an honest server ends where it began
            run.initial = {"score": 0.1, "chance": 0.1, "digest": "start"}
            run.digest = "moved" if self.candidate.description in Scripted.injected else "start"
            return run
        sites, rounds = site_names(self.contract.num_clients), self.contract.rounds
        for done in range(rounds + 1):  # as the real runner reports a seed run: started, then each round
            self.progress(Round(f"{seed}{tag}", done, rounds, len(sites)))
        run.audit = [
            {"round": r, "site": s, "steps": 1, "tensors": 6, "values": 8970}
            for r in range(self.contract.rounds)
            for s in sites
        ]
        base = 0.6 + 0.03 * ((seed * 7) % 5)  # a seed effect shared by every candidate
        run.score = base + Scripted.effects.get(self.candidate.description, 0.0)
        run.score += Scripted.seed_effects.get(self.candidate.description, {}).get(seed, 0.0)
        return run

    def evaluate(self, runs: list[SeedRun]) -> None:
        """Scripted runs are scored as they finish."""
