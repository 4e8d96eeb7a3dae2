"""Metrics the harness computes from a model's outputs and the held-out labels (scikit-learn's
implementations). The model's code never sees the labels and never runs where they are: it only produced the
outputs (``run.predict``), one row of class scores (logits) per example."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_autofl.core.errors import AutoFLError

if TYPE_CHECKING:  # numpy is imported where a score is computed: the contract (which imports this table) is
    import numpy as np  # read by the single-threaded sandbox launcher, which must not start numpy's threads


class OutputError(AutoFLError):
    """A model's outputs cannot be scored (wrong shape, not finite)."""


def _probabilities(outputs: np.ndarray) -> np.ndarray:
    import numpy as np

    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return exp / exp.sum(axis=1, keepdims=True)


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    import numpy as np

    return float(np.mean(outputs.argmax(axis=1) == labels))


def balanced_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(labels, outputs.argmax(axis=1)))


def macro_f1(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, outputs.argmax(axis=1), average="macro", zero_division=0))


def auroc(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Binary tasks: the area under the ROC curve of the positive class' probability."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, _probabilities(outputs)[:, 1]))


def log_loss(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import log_loss as sk_log_loss

    probabilities = _probabilities(outputs)
    return float(sk_log_loss(labels, probabilities, labels=list(range(probabilities.shape[1]))))


@dataclass(frozen=True)
class Metric:
    compute: Callable[[np.ndarray, np.ndarray], float]
    direction: str  # max | min: what the contract's metric.direction must say
    binary_only: bool = False


METRICS: dict[str, Metric] = {
    "accuracy": Metric(accuracy, "max"),
    "balanced_accuracy": Metric(balanced_accuracy, "max"),
    "macro_f1": Metric(macro_f1, "max"),
    "auroc": Metric(auroc, "max", binary_only=True),
    "log_loss": Metric(log_loss, "min"),
}


def metric_problem(name: str, direction: str, num_classes: int | None = None) -> str | None:
    """Why ``name`` (with ``direction``) does not fit the task, or None."""
    if name not in METRICS:
        return f"metric {name!r} is not one of {sorted(METRICS)}"
    metric = METRICS[name]
    if direction != metric.direction:
        return f"metric {name!r} is {'higher' if metric.direction == 'max' else 'lower'}-is-better: direction must be {metric.direction!r}"
    if num_classes is not None and metric.binary_only and num_classes != 2:
        return f"metric {name!r} needs a binary task; the data set has {num_classes} classes"
    return None


def score(metric: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    """``metric`` of ``outputs`` (one row of class scores per example) against ``labels``."""
    import numpy as np

    if outputs.ndim != 2 or outputs.shape[0] != len(labels) or outputs.shape[1] < 2:
        raise OutputError(
            f"outputs of shape {outputs.shape}, expected ({len(labels)}, number of classes): one row of class "
            "scores per held-out example"
        )
    if not np.issubdtype(outputs.dtype, np.floating) or not np.isfinite(outputs).all():
        raise OutputError(f"outputs must be finite floats, got dtype {outputs.dtype} with non-finite values")
    if labels.size and int(labels.max()) >= outputs.shape[1]:
        raise OutputError(
            f"outputs have {outputs.shape[1]} class columns; the labels go up to {int(labels.max())}"
        )
    return METRICS[metric].compute(outputs, labels)
