"""Paired statistics for verdicts: a Student-t interval on per-seed gains, spent sequentially over seeds.

Why a t-interval: with 2-8 seeds a paired bootstrap percentile interval is too narrow (it resamples a handful of
values and ignores that their spread is itself estimated), and the Wilcoxon signed-rank test cannot reach 95%
confidence below 6 pairs (its smallest one-sided p-value with n pairs is 2^-n). The t-interval is exact for
Gaussian seed noise, widens correctly when seeds disagree, and a single diverged seed makes it inconclusive
rather than decisive - the safe direction.

Optional stopping: a candidate is looked at after each seed from ``min_seeds`` to ``max_seeds``. Each look
uses a one-sided level of alpha / (number of looks) (Bonferroni), so the chance that any look wrongly keeps
is at most alpha however the stopping plays out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

KEEP, NARROW, DISCARD = "keep", "narrow", "discard"


@dataclass(frozen=True)
class Interval:
    n: int
    mean: float
    low: float
    high: float


def t_interval(gains: Sequence[float], alpha_one_sided: float) -> Interval:
    """Two one-sided bounds at level 1 - alpha each; infinite when fewer than two seeds or no spread info."""
    n = len(gains)
    if n == 0:
        raise ValueError("no paired gains")
    mean = math.fsum(gains) / n
    if n < 2:
        return Interval(n, mean, -math.inf, math.inf)
    var = math.fsum((g - mean) ** 2 for g in gains) / (n - 1)
    # Imported here: scipy.stats takes over a second to import, and the ledger's readers and writers (and the
    # processes in the sandbox) import this module for the verdict names only.
    from scipy import stats as _scipy_stats

    half = float(_scipy_stats.t.ppf(1 - alpha_one_sided, n - 1)) * math.sqrt(var / n)
    return Interval(n, mean, mean - half, mean + half)


def looks(min_seeds: int, max_seeds: int) -> int:
    return max(1, max_seeds - min_seeds + 1)


def sequential_decision(
    gains: Sequence[float], threshold: float, alpha: float, min_seeds: int, max_seeds: int
) -> tuple[str, Interval]:
    """The verdict after ``len(gains)`` paired seeds; NARROW before ``max_seeds`` means "earn another seed".

    keep: the lower bound clears the threshold; discard: the upper bound is below it, or the mean gain is
    negative; narrow: inconclusive.
    """
    interval = t_interval(gains, alpha / looks(min_seeds, max_seeds))
    if len(gains) < min_seeds:
        return NARROW, interval
    if interval.low > threshold:
        return KEEP, interval
    if interval.high < threshold or interval.mean < 0:
        return DISCARD, interval
    return NARROW, interval


def run_sequential(
    gains: Sequence[float], threshold: float, alpha: float, min_seeds: int, max_seeds: int
) -> tuple[str, Interval]:
    """Spend seeds one at a time (as the runner does) and stop at the first decisive look."""
    verdict, interval = NARROW, t_interval(gains[:1], 1.0) if gains else Interval(0, 0.0, -math.inf, math.inf)
    for n in range(min_seeds, min(max_seeds, len(gains)) + 1):
        verdict, interval = sequential_decision(gains[:n], threshold, alpha, min_seeds, max_seeds)
        if verdict != NARROW:
            break
    return verdict, interval


def noise_floor(scores: Sequence[float]) -> float:
    """Seed-to-seed spread of one candidate (sample standard deviation); 0 for fewer than two seeds."""
    n = len(scores)
    if n < 2:
        return 0.0
    mean = math.fsum(scores) / n
    return math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / (n - 1))
