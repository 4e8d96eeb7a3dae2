"""The optuna proposer: Optuna's samplers over the schema's knobs, the study filled from the campaign's rows
(resume, other proposers, failures), on the proposer interface and in a scripted search."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState
from test_proposer import REPO, row, view

from pytest_autofl.control.program import parse
from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.contract import load_contract
from pytest_autofl.core.schema import load_schema
from pytest_autofl.core.verdict import CRASH, DISCARD, INVALID, KEEP, NARROW
from pytest_autofl.ledger import store as ledger
from pytest_autofl.proposers import PROPOSERS
from pytest_autofl.proposers.base import SAMPLER_NAMES, ProposerOptions, ProposerSetup
from pytest_autofl.proposers.optuna_study import SAMPLERS


def setup_for(sampler="tpe", seed=None, program=None):
    schema = load_schema(REPO / "surfaces")
    options = ProposerOptions(sampler=sampler, seed=seed)
    if program is not None:
        schema = program.narrow(schema)
        options = replace(options, program=program)
    contract = load_contract(REPO / "benchmarks", "digits")
    return ProposerSetup(contract, schema, CandidateFactory(schema), REPO, REPO / ".autofl", options=options)


def walk(setup, n, history=(), score=lambda c: 0.5):
    proposer, history = PROPOSERS.get("optuna")(setup), list(history)
    for _ in range(n):
        candidate = proposer.propose(view(setup, history))
        history.append(row(candidate, DISCARD, score(candidate)))
        proposer.tell(view(setup, history[:-1]), history[-1])
    return proposer, history


def test_the_samplers_offered_are_the_samplers_built():
    assert tuple(SAMPLERS) == SAMPLER_NAMES


@pytest.mark.parametrize(
    "sampler",
    [s if s != "gp" else pytest.param(s, marks=pytest.mark.subprocess) for s in SAMPLER_NAMES],  # gp: torch
)
def test_every_sampler_proposes_untried_knob_sets_within_the_schema(sampler):
    setup = setup_for(sampler)
    _, history = walk(setup, 6)
    keys = [setup.factory.make(r.params).key for r in history]
    assert len(set(keys)) == 6
    assert all(not setup.schema.problems(r.params) for r in history)
    first = PROPOSERS.get("optuna")(setup).propose(view(setup, []))
    assert first.proposer == "optuna" and first.source == f"optuna:{sampler}"


def test_conditional_knobs_are_drawn_only_where_they_matter():
    setup = setup_for("random", seed=3)
    _, history = walk(setup, 12)
    for r in history:
        if r.params["aggregator"] != "fedavgm":
            assert r.params["server_momentum"] == setup.schema.knobs["server_momentum"].default


def test_the_study_is_filled_from_every_row_of_the_campaign():
    """Rows from anyone (an earlier session, a candidate file): scored rows with their mean selection score,
    crash and invalid as failed trials; code changes and rows outside the schema are not in the space."""
    setup = setup_for()
    make = setup.factory.make
    rows = [
        row(make({}), KEEP, 0.60),
        row(make({"aggregator": "fedavgm", "server_momentum": 0.6}), NARROW, 0.64),
        row(make({"lr": 0.2}), DISCARD, 0.40),
        row(make({"aggregator": "median"}), CRASH, None),
        row(make({"aggregator": "scaffold"}), INVALID, None),
        replace(row(make({"lr": 0.01}), KEEP, 0.9), patch_sha="abc"),  # a code change: not a knob set
        replace(row(make({}), "literature", None), candidate_id="lit-0001"),
    ]
    proposer = PROPOSERS.get("optuna")(setup)
    proposer.propose(view(setup, rows))
    trials = proposer.study.get_trials(deepcopy=False)
    done = [(t.state, t.value) for t in trials if t.state != TrialState.RUNNING]
    assert done == [
        (TrialState.COMPLETE, 0.60),
        (TrialState.COMPLETE, 0.64),
        (TrialState.COMPLETE, 0.40),
        (TrialState.FAIL, None),
        (TrialState.FAIL, None),
    ]
    assert trials[1].params["server_momentum"] == 0.6 and "server_momentum" not in trials[0].params
    assert proposer.study.direction == optuna.study.StudyDirection.MAXIMIZE
    # a program that narrows lr leaves the rows outside its bounds out of the space
    narrowed = setup_for(program=parse("---\nknobs:\n  lr: {low: 0.01, high: 0.1}\n---\n"))
    proposer = PROPOSERS.get("optuna")(narrowed)
    proposer.propose(view(narrowed, rows[:3]))
    assert [t.value for t in proposer.study.get_trials() if t.state == TrialState.COMPLETE] == [0.60, 0.64]


def test_a_resumed_campaign_proposes_what_the_uninterrupted_one_would():
    setup = setup_for("tpe", seed=7)
    _, history = walk(setup, 5, score=lambda c: c.params["lr"])
    resumed = PROPOSERS.get("optuna")(setup).propose(view(setup, history))
    again = PROPOSERS.get("optuna")(setup).propose(view(setup, history))
    assert resumed.key == again.key  # the same rows, the same seed: the same next candidate
    other = PROPOSERS.get("optuna")(setup_for("tpe", seed=8)).propose(view(setup, history))
    assert other.key != resumed.key


def test_its_own_proposals_are_told_their_verdicts():
    setup = setup_for("tpe", seed=1)
    proposer, history = walk(setup, 4, score=lambda c: 0.3)
    states = [(t.state, t.value) for t in proposer.study.get_trials()]
    assert states == [(TrialState.COMPLETE, 0.3)] * 4


def test_the_optuna_proposer_drives_a_scripted_search(make_session, tmp_path):
    s = make_session(proposer="optuna", options=ProposerOptions(sampler="tpe", seed=0))
    for slot in range(1, 5):
        s.record(s.run(s.next_candidate(), slot))
    rows = ledger.read_rows(tmp_path / "results.tsv")
    assert [(r.proposer, r.source) for r in rows] == [("builtin", "baseline")] + [
        ("optuna", "optuna:tpe")
    ] * 3
    assert all(r.status in (KEEP, NARROW, DISCARD) for r in rows)


def test_hybrid_walks_the_families_then_the_sampler_starts_from_their_rows():
    from pytest_autofl.proposers.builtin import CALIBRATION

    setup, history, sources = setup_for(seed=0), [], []
    proposer = PROPOSERS.get("hybrid")(setup)
    for i in range(len(CALIBRATION) + 2):
        candidate = proposer.propose(view(setup, history))
        sources.append(candidate.source)
        history.append(row(candidate, DISCARD, 0.1 + 0.01 * i))
        proposer.tell(view(setup, history[:-1]), history[-1])
    assert sources == ["calibration"] * len(CALIBRATION) + ["optuna:tpe"] * 2
    trials = proposer.sampler.study.get_trials()  # the walk's rows first, then what the sampler asked for
    assert [t.value for t in trials] == [r.score for r in history]
    assert trials[len(CALIBRATION)].params["aggregator"] == history[len(CALIBRATION)].params["aggregator"]
