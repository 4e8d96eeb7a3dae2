"""The built-in offline proposer: baseline, a calibration walk over canonical FL families, then narrowing.

It sees every finished candidate (this session's and the ledger's rows for the same contract) before it
proposes the next, never proposes a knob set that was already tried, and narrows around the best candidate whose
verdict was keep or narrow, with steps that shrink while nothing improves.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_autofl.core.candidate import Candidate, candidate_key, describe, family_of
from pytest_autofl.core.schema import Schema
from pytest_autofl.core.verdict import KEEP, NARROW

# (label, knob overrides on the schema defaults): the canonical families, cheapest hypotheses first.
CALIBRATION: tuple[tuple[str, dict[str, Any]], ...] = (
    ("baseline", {}),
    ("fedprox", {"fedprox_mu": 0.01}),
    ("fedprox", {"fedprox_mu": 0.1}),
    ("fedavgm", {"aggregator": "fedavgm", "server_momentum": 0.6}),
    ("fedavgm", {"aggregator": "fedavgm", "server_lr": 2.0, "server_momentum": 0.4}),
    ("fedadam", {"aggregator": "fedadam", "server_lr": 0.03}),
    ("scaffold", {"aggregator": "scaffold"}),
    ("median", {"aggregator": "median"}),
    ("model", {"arch": "mlp_wide"}),
    ("model", {"arch": "cnn_small"}),
    ("client-lr", {"lr": 0.1}),
    ("client-lr", {"lr": 0.02}),
)

CLIENT_KNOBS = ("lr", "momentum", "weight_decay", "fedprox_mu")
SERVER_KNOBS = {
    "fedavg": ("server_lr",),
    "fedavgm": ("server_lr", "server_momentum"),
    "fedadam": ("server_lr", "adam_beta1", "adam_beta2", "adam_tau"),
    "scaffold": ("server_lr",),
    "median": ("server_lr",),
}


@dataclass(frozen=True)
class Tried:
    """What the proposer needs to know of a finished candidate."""

    id: str
    params: dict[str, Any]
    status: str
    score: float | None
    patch_sha: str = ""


def _round(value: float) -> float:
    return float(f"{value:.3g}")


class BuiltinProposer:
    def __init__(self, schema: Schema, seed: int = 0, higher_is_better: bool = True):
        self.schema = schema
        self.seed = seed
        self.higher_is_better = higher_is_better

    def make(self, overrides: dict[str, Any], source: str = "builtin") -> Candidate:
        params = self.schema.complete(overrides)
        defaults = self.schema.defaults()
        return Candidate(
            params=params,
            family=family_of(params, defaults),
            description=describe(params, defaults),
            source=source,
        )

    def propose(self, history: Sequence[Tried]) -> Candidate:
        tried = {candidate_key(t.params, t.patch_sha) for t in history}
        for _label, overrides in CALIBRATION:
            if set(overrides) <= set(self.schema.knobs):
                cand = self.make(overrides)
                if cand.key not in tried:
                    return cand
        return self._narrow(history, tried)

    def _center(self, history: Sequence[Tried]) -> Tried | None:
        sign = 1.0 if self.higher_is_better else -1.0
        good = [t for t in history if t.status in (KEEP, NARROW) and t.score is not None]
        return max(good, key=lambda t: sign * (t.score or 0.0)) if good else None

    def _narrow(self, history: Sequence[Tried], tried: set[str]) -> Candidate:
        rng = random.Random(f"{self.seed}:{len(history)}")
        center = self._center(history)
        if center is None:
            return self._random(rng, tried)
        since_best = len(history) - max(i for i, t in enumerate(history) if t.id == center.id) - 1
        scale = 0.5 / (1.0 + since_best / 4.0)
        knobs = [
            k
            for k in CLIENT_KNOBS + SERVER_KNOBS.get(center.params.get("aggregator", ""), ())
            if k in self.schema.knobs
        ]
        for _ in range(100):
            params = dict(center.params)
            for name in rng.sample(knobs, k=min(len(knobs), rng.choice((1, 1, 2)))):
                params[name] = self._perturb(name, params[name], scale, rng)
            cand = self.make(params)
            if cand.key not in tried:
                return cand
        return self._random(rng, tried)

    def _perturb(self, name: str, value: Any, scale: float, rng: random.Random) -> Any:
        knob = self.schema.knobs[name]
        if knob.type == "choice":
            return rng.choice(knob.choices)
        if knob.type == "bool":
            return not value
        assert knob.low is not None and knob.high is not None
        if knob.log or (knob.low == 0 and value == 0 and knob.high <= 1):
            base = value if value > 0 else max(knob.low, knob.high * 1e-3)
            new = base * math.exp(rng.uniform(-1, 1) * scale * 2.0)
        else:
            new = value + rng.uniform(-1, 1) * scale * (knob.high - knob.low)
        if knob.type == "int":
            return int(min(max(round(new), knob.low), knob.high))
        return min(max(_round(new), knob.low), knob.high)

    def _random(self, rng: random.Random, tried: set[str]) -> Candidate:
        for _ in range(100):
            cand = self.make(
                {k: (_round(v) if isinstance(v, float) else v) for k, v in self.schema.sample(rng).items()}
            )
            if cand.key not in tried:
                return cand
        raise RuntimeError("the proposer found no untried candidate in 100 random draws")
