"""The harness' metrics from class scores, and which metric fits which task."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_autofl.core.metrics import METRICS, OutputError, metric_problem, score

LOGITS = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [0.2, 0.1]], dtype=np.float32)
LABELS = np.array([0, 1, 1, 1])


def test_each_metric_on_a_small_binary_task():
    assert score("accuracy", LOGITS, LABELS) == 0.5
    assert score("balanced_accuracy", LOGITS, LABELS) == pytest.approx((1.0 + 1 / 3) / 2)
    assert score("macro_f1", LOGITS, LABELS) == pytest.approx((0.5 + 0.5) / 2)
    assert score("auroc", LOGITS, LABELS) == pytest.approx(1.0)  # positives rank above the negative
    p = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
    assert score("log_loss", LOGITS, LABELS) == pytest.approx(
        -np.mean(np.log(p[np.arange(4), LABELS])), rel=1e-5
    )


@pytest.mark.parametrize(
    "name, direction, classes, problem",
    [
        ("auroc", "max", 10, "metric 'auroc' needs a binary task; the data set has 10 classes"),
        ("log_loss", "max", 2, "metric 'log_loss' is lower-is-better: direction must be 'min'"),
        ("accuracy", "min", 2, "metric 'accuracy' is higher-is-better: direction must be 'max'"),
        ("f2", "max", 2, "metric 'f2' is not one of"),
        ("auroc", "max", 2, None),
    ],
)
def test_a_metric_that_does_not_fit_the_task_is_named(name, direction, classes, problem):
    found = metric_problem(name, direction, classes)
    assert found == problem if problem is None else found.startswith(problem)


def test_outputs_that_cannot_be_scored():
    with pytest.raises(OutputError, match="class columns"):
        score("accuracy", LOGITS, np.array([0, 1, 2, 1]))
    with pytest.raises(OutputError, match="finite"):
        score("macro_f1", np.full((4, 2), np.nan, dtype=np.float32), LABELS)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 5), st.integers(0, 2**31 - 1))
def test_a_perfect_model_is_best_on_every_metric(classes, seed):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(classes), rng.integers(0, classes, 20)])
    perfect = np.eye(classes, dtype=np.float32)[labels] * 20
    for name, metric in METRICS.items():
        if metric.binary_only and classes != 2:
            continue
        best = 0.0 if metric.direction == "min" else 1.0
        assert score(name, perfect, labels) == pytest.approx(best, abs=1e-6)
