from __future__ import annotations

import pytest

from pytest_autofl.core.verdict import DISCARD, KEEP, NARROW, confirm, decide, paired_gains

RULE = dict(threshold=0.01, alpha=0.05, min_seeds=3, max_seeds=6)


def test_baseline_becomes_the_incumbent():
    assert decide({0: 0.8}, None, **RULE).status == KEEP


@pytest.mark.parametrize(
    ("cand", "inc", "status"),
    [
        ({0: 0.90, 1: 0.91, 2: 0.92}, {0: 0.85, 1: 0.86, 2: 0.87}, KEEP),  # +0.05 on every seed, no spread
        ({0: 0.95, 1: 0.84, 2: 0.90}, {0: 0.85, 1: 0.86, 2: 0.87}, NARROW),  # +0.037 but wildly uneven
        ({0: 0.85, 1: 0.86, 2: 0.87}, {0: 0.85, 1: 0.86, 2: 0.87}, DISCARD),  # A/A on the same seeds
        ({0: 0.80, 1: 0.81, 2: 0.82}, {0: 0.85, 1: 0.86, 2: 0.87}, DISCARD),  # clearly worse
        ({0: 0.862, 1: 0.858, 2: 0.87}, {0: 0.85, 1: 0.86, 2: 0.87}, NARROW),  # small positive, inconclusive
    ],
)
def test_rule(cand, inc, status):
    assert decide(cand, inc, **RULE).status == status


def test_lower_is_better_flips_the_sign():
    assert paired_gains({0: 0.1}, {0: 0.2}, higher_is_better=False) == [pytest.approx(0.1)]
    v = decide({0: 0.1, 1: 0.1, 2: 0.1}, {0: 0.2, 1: 0.2, 2: 0.2}, higher_is_better=False, **RULE)
    assert v.status == KEEP


def test_pairs_only_on_shared_seeds():
    assert paired_gains({0: 0.9, 7: 0.0}, {0: 0.8, 1: 0.99}) == [pytest.approx(0.1)]
    with pytest.raises(ValueError, match="share no seed"):
        decide({3: 0.9}, {0: 0.8}, **RULE)


def test_confirmation_needs_the_gain_again_on_fresh_seeds():
    assert confirm({9: 0.9, 10: 0.9}, {9: 0.85, 10: 0.86}, 0.02, for_cost=False) == (
        True,
        pytest.approx(0.045),
    )
    assert confirm({9: 0.9, 10: 0.9}, {9: 0.9, 10: 0.89}, 0.02, for_cost=False)[0] is False
    assert (
        confirm({9: 0.9, 10: 0.9}, {9: 0.9, 10: 0.91}, 0.02, for_cost=True)[0] is True
    )  # cheaper, not worse
