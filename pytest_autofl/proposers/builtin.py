"""The built-in offline proposer: baseline, a calibration walk over canonical FL families, then narrowing.

It sees every finished candidate (this session's and the ledger's rows for the same contract) before it
proposes the next, never proposes a knob set that was already tried, and narrows around the best candidate whose
verdict was keep or narrow, with steps that shrink while nothing improves. Narrowing moves the numeric knobs
that matter for the center (the schema's ``applies``: a server-momentum knob only under FedAvgM, say).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.verdict import KEEP, NARROW
from pytest_autofl.ledger.row import Row
from pytest_autofl.proposers.base import CampaignView, ProposerSetup

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


def _round(value: float) -> float:
    return float(f"{value:.3g}")


class BuiltinProposer:
    """Registered as ``builtin``; seeded from the contract hash, so a campaign proposes the same way again."""

    def __init__(self, setup: ProposerSetup):
        self.schema = setup.schema
        self.factory = setup.factory
        self.seed = setup.options.seed if setup.options.seed is not None else int(setup.contract.sha[:8], 16)
        self.higher_is_better = setup.contract.higher_is_better

    def make(self, overrides: dict[str, Any], source: str) -> Candidate:
        return self.factory.make(overrides, proposer="builtin", source=source)

    def propose(self, view: CampaignView) -> Candidate:
        tried = view.tried()
        return self.walk(tried) or self._narrow(view, tried)

    def walk(self, tried: set[str]) -> Candidate | None:
        """The first untried step of the calibration walk, or None when the walk is done."""
        for _label, overrides in CALIBRATION:
            if not self.schema.problems(overrides):  # a program.md may have narrowed the schema
                cand = self.make(overrides, "calibration")
                if cand.key not in tried:
                    return cand
        return None

    def tell(self, view: CampaignView, row: Row) -> None:
        """Nothing to learn beyond the history the next view carries."""

    def _center(self, history: Sequence[Row]) -> Row | None:
        sign = 1.0 if self.higher_is_better else -1.0
        good = [r for r in history if r.status in (KEEP, NARROW) and r.score is not None]
        return max(good, key=lambda r: sign * (r.score or 0.0)) if good else None

    def _narrow(self, view: CampaignView, tried: set[str]) -> Candidate:
        seen = len(view.history) + len(view.running)
        rng = random.Random(f"{self.seed}:{seen}")
        center = self._center(view.history)
        if center is None:
            return self._random(rng, tried)
        last = max(i for i, r in enumerate(view.history) if r.candidate_id == center.candidate_id)
        scale = 0.5 / (1.0 + (seen - last - 1) / 4.0)
        free = set(self.schema.free_knobs())
        knobs = [k for k in self.schema.numeric_knobs(center.params) if k in free]
        for _ in range(100):
            params = dict(center.params)
            for name in rng.sample(knobs, k=min(len(knobs), rng.choice((1, 1, 2)))):
                params[name] = self._perturb(name, params[name], scale, rng)
            cand = self.make(params, "narrow")
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
                {k: (_round(v) if isinstance(v, float) else v) for k, v in self.schema.sample(rng).items()},
                "random",
            )
            if cand.key not in tried:
                return cand
        raise RuntimeError("the proposer found no untried candidate in 100 random draws")
