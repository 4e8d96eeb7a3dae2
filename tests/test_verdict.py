from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_autofl.verdict import DISCARD, KEEP, NARROW, decide

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_baseline_becomes_the_incumbent():
    assert decide({0: 0.8}, None, 0.01).status == KEEP


@pytest.mark.parametrize(
    ("cand", "inc", "status"),
    [
        ({0: 0.90, 1: 0.91}, {0: 0.85, 1: 0.86}, KEEP),  # +0.05 on every seed
        ({0: 0.90, 1: 0.84}, {0: 0.85, 1: 0.86}, NARROW),  # mean +0.015 but one seed worse
        ({0: 0.852, 1: 0.862}, {0: 0.85, 1: 0.86}, NARROW),  # consistent but below min_delta
        ({0: 0.85, 1: 0.86}, {0: 0.85, 1: 0.86}, DISCARD),  # a tie is no improvement
        ({0: 0.80, 1: 0.90}, {0: 0.85, 1: 0.86}, DISCARD),  # mean -0.005
    ],
)
def test_rule(cand, inc, status):
    assert decide(cand, inc, 0.01).status == status


def test_lower_is_better_flips_the_sign():
    assert decide({0: 0.1}, {0: 0.2}, 0.01, higher_is_better=False).status == KEEP


def test_pairs_only_on_shared_seeds():
    verdict = decide({0: 0.9, 7: 0.0}, {0: 0.8, 1: 0.99}, 0.01)
    assert verdict.status == KEEP and verdict.delta == pytest.approx(0.1)
    with pytest.raises(ValueError, match="share no seed"):
        decide({3: 0.9}, {0: 0.8}, 0.01)


@given(st.lists(st.tuples(scores, scores), min_size=1, max_size=8), st.floats(0, 0.1), st.randoms())
def test_verdict_does_not_depend_on_seed_order(pairs, min_delta, rng):
    seeds = list(range(len(pairs)))
    shuffled = seeds[:]
    rng.shuffle(shuffled)
    a = decide({s: pairs[s][0] for s in seeds}, {s: pairs[s][1] for s in seeds}, min_delta)
    b = decide({s: pairs[s][0] for s in shuffled}, {s: pairs[s][1] for s in reversed(shuffled)}, min_delta)
    assert a.status == b.status


@given(st.lists(st.tuples(scores, scores), min_size=1, max_size=8), st.floats(0, 0.1))
def test_keep_needs_the_gain_and_a_loss_is_never_kept(pairs, min_delta):
    cand = {s: c for s, (c, _) in enumerate(pairs)}
    inc = {s: i for s, (_, i) in enumerate(pairs)}
    verdict = decide(cand, inc, min_delta)
    mean = sum(c - i for c, i in pairs) / len(pairs)
    if verdict.status == KEEP:
        assert mean >= min_delta and all(c > i for c, i in pairs)
    if mean <= 0:
        assert verdict.status == DISCARD
