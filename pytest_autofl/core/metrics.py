"""Metrics the harness computes from a model's outputs and the held-out labels. The model's code never sees
the labels and never runs where they are: it only produced the outputs (``run.predict``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pytest_autofl.core.errors import AutoFLError


class OutputError(AutoFLError):
    """A model's outputs cannot be scored (wrong shape, not finite)."""


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(outputs.argmax(axis=1) == labels))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"accuracy": accuracy}


def score(metric: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    """``metric`` of ``outputs`` (one row of class scores per example) against ``labels``."""
    if outputs.ndim != 2 or outputs.shape[0] != len(labels) or outputs.shape[1] < 2:
        raise OutputError(
            f"outputs of shape {outputs.shape}, expected ({len(labels)}, number of classes): one row of class "
            "scores per held-out example"
        )
    if not np.issubdtype(outputs.dtype, np.floating) or not np.isfinite(outputs).all():
        raise OutputError(f"outputs must be finite floats, got dtype {outputs.dtype} with non-finite values")
    return METRICS[metric](outputs, labels)
