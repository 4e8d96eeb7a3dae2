"""The measured compute of a trial: a code change's runs held to their twins (the unchanged surface with the
candidate's knobs, task by task in the same simulation); a knob-only candidate's are not capped."""

from __future__ import annotations

from pathlib import Path

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.run.seedrun import SeedRun
from pytest_autofl.search.fairness import trial_violations
from pytest_autofl.search.trial import TrialResult

CHANGE = Candidate(
    params={}, family="f", description="a code change", files=(("client_train.py", "x = 1\n"),)
)
KNOBS = Candidate(params={}, family="f", description="knobs only")
TWIN = {"site-1": [0.02, 0.008, 0.008], "site-2": [0.02, 0.008, 0.008]}  # start-up, 2 tasks


class _Shards:
    split = type("Split", (), {"clients": {"site-1": list(range(300)), "site-2": list(range(300))}})()

    def problems(self) -> list[str]:
        return []


def _trial(smoke_contract, candidate: Candidate, later: float, twin: dict | None = TWIN) -> list[str]:
    windows = {"site-1": [0.02, 0.008, later], "site-2": [0.02, 0.008, later]}
    runs = [
        SeedRun(seed=s, directory=Path("t"), task_seconds=windows, twin_seconds=twin, metered=True)
        for s in (0, 1)
    ]
    result = TrialResult(slot=2, candidate=candidate, trial_dir=Path("t"), runs=runs)
    return [
        v for v in trial_violations(result, smoke_contract, _Shards()) if v.startswith("measured compute")
    ]


def test_a_code_change_is_held_to_its_twins(smoke_contract):
    assert _trial(smoke_contract, CHANGE, 0.008) == []
    (over,) = _trial(smoke_contract, CHANGE, 0.016)
    assert over.startswith(
        "measured compute: 2.00x the unchanged surface's CPU per later task, the median of 4"
    )


def test_a_code_change_whose_twin_measured_nothing_fails_closed(smoke_contract):
    assert _trial(smoke_contract, CHANGE, 0.008, twin=None) == [
        f"measured compute (seed {s}, {site}): 3 windows measured, the unchanged surface's twin beside it 0: "
        "nothing to hold them to"
        for s in (0, 1)
        for site in ("site-1", "site-2")
    ]


def test_a_knob_only_candidate_runs_the_surface_s_own_code_uncapped(smoke_contract):
    assert _trial(smoke_contract, KNOBS, 0.016, twin=None) == []
