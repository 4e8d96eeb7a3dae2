from __future__ import annotations

from pathlib import Path

import pytest

from pytest_autofl.core.schema import load_schema
from pytest_autofl.core.verdict import DISCARD, KEEP, NARROW
from pytest_autofl.proposers.builtin import CALIBRATION, BuiltinProposer, Tried


@pytest.fixture(scope="module")
def proposer():
    return BuiltinProposer(load_schema(Path(__file__).resolve().parent.parent / "surfaces"), seed=7)


def _walk(proposer, n, score_of=lambda c: 0.5, status_of=lambda c: DISCARD):
    history = []
    for _ in range(n):
        cand = proposer.propose(history)
        history.append(Tried(cand.id, cand.params, status_of(cand), score_of(cand)))
    return history


def test_starts_with_the_baseline_then_walks_the_calibration(proposer):
    history = _walk(proposer, len(CALIBRATION))
    assert history[0].params == proposer.schema.defaults()
    assert [h.id for h in history] == [proposer.make(o).id for _, o in CALIBRATION]


def test_never_repeats_and_stays_in_bounds(proposer):
    history = _walk(
        proposer,
        40,
        status_of=lambda c: KEEP if c.params["lr"] > 0.05 else DISCARD,
        score_of=lambda c: c.params["lr"],
    )
    assert len({h.id for h in history}) == 40
    for h in history:
        assert proposer.schema.problems(h.params) == []


def test_narrows_around_the_best_kept_candidate(proposer):
    best = proposer.make({"aggregator": "fedavgm", "server_momentum": 0.6})

    def status(c):
        return KEEP if c.id == best.id else DISCARD

    history = _walk(
        proposer, len(CALIBRATION) + 10, status_of=status, score_of=lambda c: 0.9 if c.id == best.id else 0.5
    )
    narrowed = history[len(CALIBRATION) :]
    assert all(h.params["aggregator"] == "fedavgm" for h in narrowed)


def test_a_narrow_result_above_the_incumbent_becomes_the_center(proposer):
    base = proposer.make({})
    promising = proposer.make({"aggregator": "median"})
    history = [Tried(base.id, base.params, KEEP, 0.80), Tried(promising.id, promising.params, NARROW, 0.82)]
    history += [Tried(proposer.make(o).id, proposer.make(o).params, DISCARD, 0.5) for _, o in CALIBRATION]
    assert proposer.propose(history).params["aggregator"] == "median"
