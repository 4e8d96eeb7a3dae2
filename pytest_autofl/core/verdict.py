"""The keep / narrow / discard rule: paired per-seed gains against the incumbent, judged against a threshold
set by the measured noise floor (README, "The verdict rule").

gain_s = candidate_s - incumbent_s on the seeds both ran (sign flipped when lower is better); threshold =
max(min_delta, noise_k x noise). With the t-interval of the mean gain (``stats``): ``keep`` iff its lower bound
clears the threshold; ``discard`` iff its upper bound is below the threshold or the mean gain is negative;
``narrow`` otherwise. Within noise, a candidate that is clearly cheaper (communication <= cheaper_ratio x the
incumbent's) is kept for its cost. A failed run is ``crash`` and a contract violation ``invalid``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pytest_autofl.core.contract import Contract
from pytest_autofl.core.stats import DISCARD, KEEP, NARROW, Interval, sequential_decision

CRASH, INVALID = "crash", "invalid"
SCREENED = "screened"  # dropped by the contract's screen (one cheap seed): never run on the contract's seeds
STATUSES = (KEEP, NARROW, DISCARD, SCREENED, CRASH, INVALID)
LITERATURE = "literature"  # not a verdict: a literature review's event row (no score), before its linked rows
ROW_STATUSES = (*STATUSES, LITERATURE)


@dataclass(frozen=True)
class Verdict:
    status: str
    delta: float | None
    reason: str
    interval: Interval | None = None
    threshold: float | None = None
    cost_ratio: float | None = None
    for_cost: bool = False


def paired_gains(
    candidate: Mapping[int, float], incumbent: Mapping[int, float], higher_is_better: bool = True
) -> list[float]:
    """Gains on the shared seeds, in seed order (the verdict does not depend on that order)."""
    sign = 1.0 if higher_is_better else -1.0
    return [sign * (candidate[s] - incumbent[s]) for s in sorted(set(candidate) & set(incumbent))]


def _fmt_interval(iv: Interval) -> str:
    return f"{iv.mean:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]"


def decide(
    candidate: Mapping[int, float],
    incumbent: Mapping[int, float] | None,
    *,
    threshold: float,
    alpha: float,
    min_seeds: int,
    max_seeds: int,
    higher_is_better: bool = True,
    cost_ratio: float | None = None,
    cheaper_ratio: float = 0.8,
    time_ratio: float | None = None,
) -> Verdict:
    """The verdict of a clean candidate after the seeds it has run so far."""
    if incumbent is None:
        return Verdict(KEEP, None, "baseline: becomes the first incumbent", threshold=threshold)
    gains = paired_gains(candidate, incumbent, higher_is_better)
    if not gains:
        raise ValueError("candidate and incumbent share no seed; a paired verdict is impossible")
    status, iv = sequential_decision(gains, threshold, alpha, min_seeds, max_seeds)
    ratios = [
        f"{r:.2f}x {what}" for r, what in ((cost_ratio, "communication"), (time_ratio, "run time")) if r
    ]
    cost = f"; cost vs incumbent: {', '.join(ratios)}" if ratios else ""
    n = f"on {iv.n} seed(s)"
    if status == KEEP:
        why = f"gain {_fmt_interval(iv)} > threshold {threshold:.4f} {n}{cost}"
        return Verdict(KEEP, iv.mean, why, iv, threshold, cost_ratio)
    within_noise = iv.low > -threshold and abs(iv.mean) < threshold
    if within_noise and cost_ratio is not None and cost_ratio <= cheaper_ratio and iv.n >= min_seeds:
        why = f"gain {_fmt_interval(iv)} within noise (threshold {threshold:.4f}) {n}, and cheaper{cost}"
        return Verdict(KEEP, iv.mean, why, iv, threshold, cost_ratio, for_cost=True)
    if status == DISCARD:
        side = "negative" if iv.mean < 0 else f"below threshold {threshold:.4f}"
        return Verdict(
            DISCARD, iv.mean, f"gain {_fmt_interval(iv)} {side} {n}{cost}", iv, threshold, cost_ratio
        )
    return Verdict(
        NARROW,
        iv.mean,
        f"gain {_fmt_interval(iv)} inconclusive vs threshold {threshold:.4f} {n}{cost}",
        iv,
        threshold,
        cost_ratio,
    )


def decide_under(
    contract: Contract,
    candidate: Mapping[int, float],
    incumbent: Mapping[int, float],
    threshold: float,
    *,
    max_seeds: int | None = None,
    cost_ratio: float | None = None,
    time_ratio: float | None = None,
) -> Verdict:
    """``decide`` with the contract's statistics: its confidence, seeds, direction and cheaper ratio.
    ``max_seeds`` caps the looks below the contract's seed count (for a split-seed A/A check)."""
    st = contract.statistics
    looks = len(contract.seeds) if max_seeds is None else max_seeds
    return decide(
        candidate,
        incumbent,
        threshold=threshold,
        alpha=st.alpha,
        min_seeds=min(st.min_seeds, looks),
        max_seeds=looks,
        higher_is_better=contract.higher_is_better,
        cost_ratio=cost_ratio,
        time_ratio=time_ratio,
        cheaper_ratio=st.cheaper_ratio,
    )


def confirm(
    candidate: Mapping[int, float],
    incumbent: Mapping[int, float],
    threshold: float,
    for_cost: bool,
    higher_is_better: bool = True,
) -> tuple[bool, float]:
    """A keep replicates on fresh seeds iff its mean fresh gain reaches the threshold (a keep for cost: iff it
    is not worse by more than the threshold)."""
    gains = paired_gains(candidate, incumbent, higher_is_better)
    mean = sum(gains) / len(gains)
    return (mean >= -threshold if for_cost else mean >= threshold), mean
