"""Server-side aggregation strategies (NVFlare ``ModelAggregator``s over client model DIFFs).

Every strategy sums client updates in site-name order in float64, so concurrent runs with the same seed are
bitwise identical whatever order the results arrive in. Clients weight by ``NUM_STEPS_CURRENT_ROUND``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
from nvflare.app_common.aggregators.model_aggregator import ModelAggregator

NUM_STEPS = "NUM_STEPS_CURRENT_ROUND"
SCAFFOLD_C_DIFF = "scaffold_c_diff"
SCAFFOLD_C_GLOBAL = "scaffold_c_global"


class _DiffAggregator(ModelAggregator):
    """Collects one DIFF per site per round; subclasses turn them into the server update."""

    def __init__(self, server_lr: float = 1.0):
        super().__init__()
        self.server_lr = server_lr
        self._results: dict[str, FLModel] = {}

    def accept_model(self, model: FLModel) -> None:
        if model.params_type != ParamsType.DIFF:
            raise ValueError(f"expected DIFF params, got {model.params_type}")
        site = str((model.meta or {}).get("client_name", f"unknown-{len(self._results)}"))
        weight = float((model.meta or {}).get(NUM_STEPS, 1) or 0)
        if weight <= 0:
            raise ValueError(f"{site} reported {NUM_STEPS}={weight}; a zero-weight update cannot be averaged")
        self._results[site] = model

    def reset_stats(self) -> None:
        self._results = {}

    def _ordered(self) -> list[tuple[str, FLModel]]:
        return sorted(self._results.items())

    def _weighted_mean(self) -> dict[str, np.ndarray]:
        ordered = self._ordered()
        total = sum(float(m.meta[NUM_STEPS]) for _, m in ordered)
        mean: dict[str, np.ndarray] = {}
        for _, m in ordered:
            w = float(m.meta[NUM_STEPS]) / total
            for k, v in m.params.items():
                mean[k] = mean.get(k, 0.0) + w * np.asarray(v, dtype=np.float64)
        return mean

    def _metrics(self) -> dict[str, float]:
        ordered = self._ordered()
        keys = set.intersection(*(set((m.metrics or {}).keys()) for _, m in ordered)) if ordered else set()
        return {k: float(np.mean([float(m.metrics[k]) for _, m in ordered])) for k in sorted(keys)}

    def _finish(self, update: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> FLModel:
        params = {k: (self.server_lr * v).astype(np.float32) for k, v in update.items()}
        out = FLModel(params=params, params_type=ParamsType.DIFF, metrics=self._metrics(), meta=meta or {})
        self.reset_stats()
        return out

    def aggregate_model(self) -> FLModel:
        return self._finish(self._weighted_mean())


class FedAvg(_DiffAggregator):
    """McMahan et al. 2017: step-weighted mean of client updates."""


class FedAvgM(_DiffAggregator):
    """Hsu et al. 2019: server momentum v = m*v + mean update; the model moves by server_lr * v."""

    def __init__(self, server_lr: float = 1.0, server_momentum: float = 0.9):
        super().__init__(server_lr)
        self.server_momentum = server_momentum
        self._velocity: dict[str, np.ndarray] = {}

    def aggregate_model(self) -> FLModel:
        mean = self._weighted_mean()
        for k, v in mean.items():
            self._velocity[k] = self.server_momentum * self._velocity.get(k, 0.0) + v
        return self._finish(dict(self._velocity))


class FedAdam(_DiffAggregator):
    """Reddi et al. 2021 (FedOpt): Adam on the mean update as a pseudo-gradient, no bias correction."""

    def __init__(self, server_lr: float = 0.03, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3):
        super().__init__(server_lr)
        self.beta1, self.beta2, self.tau = beta1, beta2, tau
        self._m: dict[str, np.ndarray] = {}
        self._v: dict[str, np.ndarray] = {}

    def aggregate_model(self) -> FLModel:
        mean = self._weighted_mean()
        step = {}
        for k, d in mean.items():
            self._m[k] = self.beta1 * self._m.get(k, 0.0) + (1 - self.beta1) * d
            self._v[k] = self.beta2 * self._v.get(k, 0.0) + (1 - self.beta2) * d * d
            step[k] = self._m[k] / (np.sqrt(self._v[k]) + self.tau)
        return self._finish(step)


class Scaffold(_DiffAggregator):
    """Karimireddy et al. 2020: clients send their control-variate change; the server keeps the global c."""

    def __init__(self, server_lr: float = 1.0):
        super().__init__(server_lr)
        self._c_global: dict[str, np.ndarray] = {}

    def aggregate_model(self) -> FLModel:
        ordered = self._ordered()
        for _, m in ordered:
            c_diff = m.meta.get(SCAFFOLD_C_DIFF)
            if c_diff is None:
                raise ValueError("SCAFFOLD needs every client to send meta['scaffold_c_diff']")
            for k, v in c_diff.items():
                self._c_global[k] = self._c_global.get(k, 0.0) + np.asarray(v, dtype=np.float64) / len(
                    ordered
                )
        c_global = {k: v.astype(np.float32) for k, v in self._c_global.items()}
        return self._finish(self._weighted_mean(), meta={SCAFFOLD_C_GLOBAL: c_global})


class Median(_DiffAggregator):
    """Yin et al. 2018: coordinate-wise median of client updates (unweighted; robust to outliers)."""

    def aggregate_model(self) -> FLModel:
        ordered = self._ordered()
        keys = ordered[0][1].params.keys()
        median = {
            k: np.median(np.stack([np.asarray(m.params[k], dtype=np.float64) for _, m in ordered]), axis=0)
            for k in keys
        }
        return self._finish(median)


def build_aggregator(knobs: dict[str, Any]) -> _DiffAggregator:
    """Map the schema's server knobs to a strategy instance."""
    name, lr = knobs["aggregator"], knobs["server_lr"]
    if name == "fedavg":
        return FedAvg(server_lr=lr)
    if name == "fedavgm":
        return FedAvgM(server_lr=lr, server_momentum=knobs["server_momentum"])
    if name == "fedadam":
        return FedAdam(
            server_lr=lr, beta1=knobs["adam_beta1"], beta2=knobs["adam_beta2"], tau=knobs["adam_tau"]
        )
    if name == "scaffold":
        return Scaffold(server_lr=lr)
    if name == "median":
        return Median(server_lr=lr)
    raise ValueError(f"unknown aggregator {name!r}")
