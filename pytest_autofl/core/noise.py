"""The noise floor of a contract: the baseline's seed-to-seed spread, measured once and cached.

An A/A calibration runs the baseline on every selection seed (that spread is the noise) and repeats the first
seed (equal scores prove the runs are deterministic). The cache is keyed by ``contract_sha`` and the surface
hash, so changing either measures again; ``--autofl-calibrate`` forces it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pytest_autofl.core.stats import noise_floor

DETERMINISM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class NoiseFloor:
    noise: float
    scores: dict[int, float]
    repeat_seed: int
    repeat_delta: float
    seconds: float

    @property
    def deterministic(self) -> bool:
        return self.repeat_delta <= DETERMINISM_TOLERANCE

    @classmethod
    def measure(
        cls, scores: dict[int, float], repeat_seed: int, repeat_score: float, seconds: float
    ) -> NoiseFloor:
        return cls(
            noise=noise_floor(list(scores.values())),
            scores=dict(scores),
            repeat_seed=repeat_seed,
            repeat_delta=abs(repeat_score - scores[repeat_seed]),
            seconds=seconds,
        )

    def describe(self) -> str:
        det = (
            "deterministic"
            if self.deterministic
            else f"NOT deterministic (repeat differs by {self.repeat_delta:.2g})"
        )
        return f"noise floor: sd {self.noise:.4f} over {len(self.scores)} baseline seeds; repeat of seed {self.repeat_seed}: {det}"


def cache_path(workdir: Path, contract_sha: str, surface_sha: str) -> Path:
    return workdir / "noise" / f"{contract_sha[:16]}-{surface_sha[:16]}.json"


def load(path: Path) -> NoiseFloor | None:
    try:
        raw = json.loads(path.read_text())
        raw["scores"] = {int(k): float(v) for k, v in raw["scores"].items()}
        return NoiseFloor(**raw)
    except (OSError, ValueError, TypeError, KeyError):
        return None  # missing or unreadable: measure again


def save(path: Path, floor: NoiseFloor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(floor), indent=1))
    os.replace(tmp, path)
