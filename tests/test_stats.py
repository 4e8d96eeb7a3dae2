"""Properties of the verdict statistics on synthetic seed noise (no NVFlare)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_autofl.core.stats import (
    DISCARD,
    KEEP,
    NARROW,
    noise_floor,
    run_sequential,
    sequential_decision,
    t_interval,
)
from pytest_autofl.core.verdict import decide

# The digits contract's defaults.
MIN_SEEDS, MAX_SEEDS, ALPHA, NOISE_K = 3, 6, 0.05, 0.5


def simulate(effect_in_noise: float, noise: float, trials: int, seed: int) -> float:
    """Share of trials kept. Worst case for pairing: no seed effect is shared, so a paired gain has
    sd sqrt(2) x noise (the baseline's seed-to-seed spread)."""
    rng = random.Random(seed)
    threshold = max(0.005, NOISE_K * noise)
    kept = 0
    for _ in range(trials):
        gains = [rng.gauss(effect_in_noise * noise, math.sqrt(2) * noise) for _ in range(MAX_SEEDS)]
        kept += run_sequential(gains, threshold, ALPHA, MIN_SEEDS, MAX_SEEDS)[0] == KEEP
    return kept / trials


@settings(max_examples=5, deadline=None)
@given(st.floats(0.01, 0.08), st.integers(0, 10**6))
def test_aa_on_synthetic_noise_keeps_at_most_5_percent(noise, seed):
    assert simulate(0.0, noise, 600, seed) <= 0.05


@settings(max_examples=5, deadline=None)
@given(st.floats(0.01, 0.08), st.integers(0, 10**6))
def test_a_true_effect_of_3x_noise_is_kept_at_least_80_percent(noise, seed):
    assert simulate(3.0, noise, 1000, seed) >= 0.80


@given(st.lists(st.floats(-0.2, 0.2), min_size=2, max_size=8), st.floats(0.0, 0.05), st.randoms())
def test_the_verdict_does_not_depend_on_the_order_of_seeds(gains, threshold, rng):
    shuffled = gains[:]
    rng.shuffle(shuffled)
    a = sequential_decision(gains, threshold, ALPHA, 2, 8)
    b = sequential_decision(shuffled, threshold, ALPHA, 2, 8)
    assert a[0] == b[0] and a[1].mean == pytest.approx(b[1].mean) and a[1].low == pytest.approx(b[1].low)


@given(st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=7), st.floats(0.0, 0.05), st.floats(0.0, 0.3))
def test_adding_a_supporting_seed_never_flips_keep_to_discard(gains, threshold, extra):
    if sequential_decision(gains, threshold, ALPHA, 3, 8)[0] != KEEP:
        return
    # The new seed's gain is at least the threshold: the data support the keep, so no discard may follow.
    assert sequential_decision([*gains, threshold + extra], threshold, ALPHA, 3, 8)[0] != DISCARD


def test_interval_basics():
    iv = t_interval([0.01, 0.02, 0.03], 0.05)
    assert iv.mean == pytest.approx(0.02) and iv.low < 0.02 < iv.high
    assert t_interval([0.5], 0.05).low == -math.inf
    assert noise_floor([0.5, 0.7]) == pytest.approx(math.sqrt(0.02)) and noise_floor([0.5]) == 0.0


def test_a_clear_loser_stops_at_the_minimum_and_only_inconclusive_earns_seeds():
    loser = [-0.1, -0.12, -0.09, -0.11, -0.1, -0.1]
    assert run_sequential(loser, 0.01, ALPHA, 3, 6) == (
        DISCARD,
        run_sequential(loser[:3], 0.01, ALPHA, 3, 6)[1],
    )
    unclear = [0.05, -0.02, 0.04, 0.0, 0.03, -0.01]
    verdict, iv = run_sequential(unclear, 0.01, ALPHA, 3, 6)
    assert verdict == NARROW and iv.n == 6


def test_decide_reports_interval_threshold_and_cost():
    rule = dict(threshold=0.02, alpha=ALPHA, min_seeds=3, max_seeds=6)
    v = decide({0: 0.9, 1: 0.91, 2: 0.92}, {0: 0.8, 1: 0.8, 2: 0.81}, cost_ratio=1.0, **rule)
    assert v.status == KEEP and v.interval.n == 3
    assert "> threshold 0.0200 on 3 seed(s); cost vs incumbent: 1.00x communication" in v.reason
    same, tie = {0: 0.80, 1: 0.81, 2: 0.79}, {0: 0.801, 1: 0.808, 2: 0.791}
    cheap = decide(tie, same, cost_ratio=0.5, **rule)
    assert cheap.status == KEEP and cheap.for_cost and "within noise" in cheap.reason
    assert decide(tie, same, cost_ratio=1.0, **rule).status != KEEP
