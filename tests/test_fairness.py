"""The measured compute's reference: the baseline run beside the candidate, not a figure from another load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.ledger.row import Row
from pytest_autofl.run.seedrun import SeedRun
from pytest_autofl.search.fairness import cpu_reference
from pytest_autofl.search.trial import TrialResult

CHANGE = Candidate(
    params={}, family="f", description="a code change", files=(("client_train.py", "x = 1\n"),)
)
CALIBRATION = Row(
    status="keep",
    candidate_id="base",
    params={},
    description="baseline",
    target="baseline",
    budget="",
    score=0.5,
    runtime_seconds=1.0,
    artifacts=(),
    seed_scores={},
    reason="",
    contract_sha="",
    split_sha="",
    benchmark="digits-smoke",
    env="sim",
    cpu_seconds=0.5,
)


def trial(reference: SeedRun | None) -> TrialResult:
    return TrialResult(slot=2, candidate=CHANGE, trial_dir=Path("t"), reference=reference)


def test_the_reference_is_the_baseline_run_beside_the_candidate():
    beside = SeedRun(seed=0, directory=Path("t/reference"), cpu_seconds=1.7)
    assert cpu_reference(trial(beside), CALIBRATION) == 1.7


def test_the_calibration_figure_stands_in_only_when_the_run_beside_measured_nothing():
    unmetered = SeedRun(seed=0, directory=Path("t/reference"), error="seed 0: crashed")
    assert cpu_reference(trial(unmetered), CALIBRATION) == 0.5
    assert cpu_reference(trial(None), CALIBRATION) == 0.5
    assert cpu_reference(trial(None), replace(CALIBRATION, cpu_seconds=None)) is None
    assert cpu_reference(trial(None), None) is None
