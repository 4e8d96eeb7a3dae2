"""The built-in proposer through the proposer interface: a view of the campaign in, one candidate out."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.contract import load_contract
from pytest_autofl.core.schema import load_schema
from pytest_autofl.core.verdict import DISCARD, KEEP, NARROW
from pytest_autofl.ledger.row import Row
from pytest_autofl.proposers import PROPOSERS
from pytest_autofl.proposers.base import CampaignView, ProposerSetup
from pytest_autofl.proposers.builtin import CALIBRATION

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setup():
    schema = load_schema(REPO / "surfaces")
    contract = load_contract(REPO / "benchmarks", "digits")
    return ProposerSetup(contract, schema, CandidateFactory(schema), REPO, REPO / ".autofl")


@pytest.fixture(scope="module")
def proposer(setup):
    return PROPOSERS.get("builtin")(setup)


def row(candidate, status, score):
    return Row(
        status=status,
        candidate_id=candidate.id,
        params=candidate.params,
        description=candidate.description,
        target="",
        budget="",
        score=score,
        runtime_seconds=0.0,
        artifacts=(),
        seed_scores={},
        reason="",
        contract_sha="",
        split_sha="",
        benchmark="digits",
        env="sim",
        patch_sha=candidate.patch_sha,
    )


def view(setup, history):
    return CampaignView(setup.contract, setup.schema, setup.factory, {}, tuple(history))


def _walk(setup, proposer, n, score_of=lambda c: 0.5, status_of=lambda c: DISCARD):
    history = []
    for _ in range(n):
        cand = proposer.propose(view(setup, history))
        history.append(row(cand, status_of(cand), score_of(cand)))
    return history


def test_starts_with_the_baseline_then_walks_the_calibration(setup, proposer):
    history = _walk(setup, proposer, len(CALIBRATION))
    assert history[0].params == setup.schema.defaults()
    assert [h.candidate_id for h in history] == [setup.factory.make(o).id for _, o in CALIBRATION]


def test_never_repeats_and_stays_in_bounds(setup, proposer):
    history = _walk(
        setup,
        proposer,
        40,
        status_of=lambda c: KEEP if c.params["lr"] > 0.05 else DISCARD,
        score_of=lambda c: c.params["lr"],
    )
    assert len({h.candidate_id for h in history}) == 40
    for h in history:
        assert setup.schema.problems(h.params) == []


def test_narrows_around_the_best_kept_candidate(setup, proposer):
    best = setup.factory.make({"aggregator": "fedavgm", "server_momentum": 0.6})

    def status(c):
        return KEEP if c.id == best.id else DISCARD

    history = _walk(
        setup,
        proposer,
        len(CALIBRATION) + 10,
        status_of=status,
        score_of=lambda c: 0.9 if c.id == best.id else 0.5,
    )
    narrowed = history[len(CALIBRATION) :]
    assert all(h.params["aggregator"] == "fedavgm" for h in narrowed)
    moved = {k for h in narrowed for k in h.params if h.params[k] != best.params[k]}
    assert moved <= set(setup.schema.numeric_knobs(best.params))  # adam_* never move under FedAvgM


def test_a_narrow_result_above_the_incumbent_becomes_the_center(setup, proposer):
    base = setup.factory.make({})
    promising = setup.factory.make({"aggregator": "median"})
    history = [row(base, KEEP, 0.80), row(promising, NARROW, 0.82)]
    history += [row(setup.factory.make(o), DISCARD, 0.5) for _, o in CALIBRATION]
    assert proposer.propose(view(setup, history)).params["aggregator"] == "median"


def test_builtin_candidates_say_where_they_came_from(setup, proposer):
    first = proposer.propose(view(setup, []))
    assert (first.proposer, first.source) == ("builtin", "calibration")


def test_a_program_that_narrows_the_schema_is_honoured(setup):
    from dataclasses import replace

    from pytest_autofl.control.program import parse

    narrow = parse(
        "---\nknobs: {aggregator: {choices: [fedavg, fedavgm]}, server_momentum: {}}\n---\n"
    ).narrow(setup.schema)
    narrowed = replace(setup, schema=narrow, factory=CandidateFactory(narrow))
    proposer = PROPOSERS.get("builtin")(narrowed)
    history = _walk(
        narrowed,
        proposer,
        12,
        status_of=lambda c: KEEP if c.params["server_momentum"] > 0.5 else DISCARD,
        score_of=lambda c: c.params["server_momentum"],
    )
    assert len({h.candidate_id for h in history}) == 12
    for h in history:
        assert narrow.problems(h.params) == []
        assert h.params["lr"] == 0.05 and h.params["aggregator"] in ("fedavg", "fedavgm")
