"""The measured compute's reference: the unchanged surface with the candidate's knobs, run beside it."""

from __future__ import annotations

from pathlib import Path

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.run.seedrun import SeedRun
from pytest_autofl.search.fairness import trial_violations
from pytest_autofl.search.trial import TrialResult

CHANGE = Candidate(
    params={}, family="f", description="a code change", files=(("client_train.py", "x = 1\n"),)
)


class _Shards:
    split = type("Split", (), {"clients": {"site-1": list(range(300)), "site-2": list(range(300))}})()

    def problems(self) -> list[str]:
        return []


def _trial(smoke_contract, reference: SeedRun | None, later: float) -> list[str]:
    windows = {"site-1": [0.02, later], "site-2": [0.02, later]}
    runs = [SeedRun(seed=s, directory=Path("t"), task_seconds=windows, metered=True) for s in (0, 1)]
    result = TrialResult(slot=2, candidate=CHANGE, trial_dir=Path("t"), runs=runs, reference=reference)
    return [
        v for v in trial_violations(result, smoke_contract, _Shards()) if v.startswith("measured compute")
    ]


def test_a_code_change_is_held_to_the_run_beside_it(smoke_contract):
    beside = SeedRun(seed=0, directory=Path("t/reference"), task_seconds={"site-1": [0.02, 0.008]})
    assert _trial(smoke_contract, beside, 0.008) == []
    (over,) = _trial(smoke_contract, beside, 0.016)
    assert "2.00x the unchanged surface's 8.0 ms" in over


def test_a_reference_that_measured_nothing_fails_closed(smoke_contract):
    crashed = SeedRun(seed=0, directory=Path("t/reference"), error="seed 0: crashed")
    assert _trial(smoke_contract, crashed, 0.008) == [
        "measured compute: the unchanged surface's run beside it measured nothing to compare with"
    ]
