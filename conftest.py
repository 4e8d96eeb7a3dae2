"""This repository's own data-set registrations: the pattern for yours. pytest-autofl calls
``pytest_autofl_add_datasets`` once per session; register a named set (``datasets.register``) or a kind
(``kinds.register``) and name it in a contract's ``dataset`` block. Only the pytest process loads data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_autofl.core.errors import ContractError
from pytest_autofl.data.arrays import DataSet, make


def fedprox_synthetic(spec: dict[str, Any], directory: Path, where: str) -> DataSet:
    """Synthetic(alpha, beta) of FedProx (Li et al., MLSys 2020, arXiv:1812.06127, Sec. 5.1): device k labels
    ``x ~ N(v_k, diag(j^-1.2))`` by ``argmax(W_k x + b_k)``, with ``W_k, b_k ~ N(u_k, 1)``, ``u_k ~ N(0, alpha)``
    (how much the devices' models differ) and ``v_k ~ N(B_k, 1)``, ``B_k ~ N(0, beta)`` (how much their inputs
    differ); 60 features, 10 classes, power-law device sizes (lognormal, capped at ``max_rows``). Each row's
    site is its device: the natural partition (``"partition": "site"``) gives each client one device."""
    try:
        alpha, beta = float(spec["alpha"]), float(spec["beta"])
        devices, seed = int(spec["devices"]), int(spec.get("seed", 0))
        max_rows = int(spec.get("max_rows", 1000))
    except (KeyError, TypeError, ValueError) as exc:
        raise ContractError(
            f"{where}: fedprox_synthetic needs numbers alpha, beta, devices ({exc})"
        ) from None
    rng = np.random.default_rng(seed)
    features, classes = 60, 10
    sizes = np.minimum(rng.lognormal(4, 2, devices).astype(int) + 50, max_rows)
    scale = np.sqrt(np.arange(1, features + 1) ** -1.2)
    xs, ys, sites = [], [], []
    model_means, input_means = rng.normal(0, alpha, devices), rng.normal(0, beta, devices)
    for k, (u, b_mean) in enumerate(zip(model_means, input_means, strict=True)):
        weights, bias = rng.normal(u, 1, (features, classes)), rng.normal(u, 1, classes)
        x = rng.normal(b_mean, 1, features) + rng.normal(size=(sizes[k], features)) * scale
        xs.append(x)
        ys.append(np.argmax(x @ weights + bias, axis=1))
        sites += [f"device-{k}"] * int(sizes[k])
    return make(np.concatenate(xs), np.concatenate(ys), np.array(sites), where)


def pytest_autofl_add_datasets(datasets: Any, kinds: Any) -> None:
    kinds.register("fedprox_synthetic", fedprox_synthetic)
