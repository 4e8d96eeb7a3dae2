"""The keep / narrow / discard rule, from paired per-seed scores against the incumbent.

Rule (also in the README): for the seeds both ran, gain_s = candidate_s - incumbent_s (sign flipped when lower
is better); ``keep`` iff mean(gain) >= min_delta and every gain_s > 0; ``narrow`` iff mean(gain) > 0 but not
keep; ``discard`` otherwise. A failed run is ``crash`` and a contract violation ``invalid`` (no comparison).
Pairing on seeds removes the seed-to-seed spread that both share; a later release replaces the consistency
clause with confidence intervals against a measured noise floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

KEEP, NARROW, DISCARD, CRASH, INVALID = "keep", "narrow", "discard", "crash", "invalid"
STATUSES = (KEEP, NARROW, DISCARD, CRASH, INVALID)


@dataclass(frozen=True)
class Verdict:
    status: str
    delta: float | None
    reason: str


def paired_gains(
    candidate: Mapping[int, float], incumbent: Mapping[int, float], higher_is_better: bool = True
) -> dict[int, float]:
    sign = 1.0 if higher_is_better else -1.0
    return {s: sign * (candidate[s] - incumbent[s]) for s in sorted(set(candidate) & set(incumbent))}


def decide(
    candidate: Mapping[int, float],
    incumbent: Mapping[int, float] | None,
    min_delta: float,
    higher_is_better: bool = True,
) -> Verdict:
    """The verdict of a candidate that ran cleanly, against the incumbent's scores on the same seeds."""
    if incumbent is None:
        return Verdict(KEEP, None, "baseline: becomes the first incumbent")
    gains = paired_gains(candidate, incumbent, higher_is_better)
    if not gains:
        raise ValueError("candidate and incumbent share no seed; a paired verdict is impossible")
    mean = sum(gains.values()) / len(gains)
    n, wins = len(gains), sum(g > 0 for g in gains.values())
    summary = f"mean paired gain {mean:+.4f} over {n} seed(s), better on {wins}/{n}"
    if mean >= min_delta and wins == n:
        return Verdict(KEEP, mean, f"{summary}; >= min_delta {min_delta:g} and consistent")
    if mean > 0:
        why = f"below min_delta {min_delta:g}" if mean < min_delta else "not better on every seed"
        return Verdict(NARROW, mean, f"{summary}; positive but inconclusive ({why})")
    return Verdict(DISCARD, mean, f"{summary}; no improvement")
