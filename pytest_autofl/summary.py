"""Terminal summary of a search session: one line per candidate, then best versus baseline."""

from __future__ import annotations

from collections.abc import Sequence

from .session import Incumbent, TrialResult


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_lines(
    results: Sequence[TrialResult],
    baseline: Incumbent | None,
    best: Incumbent | None,
    test_scores: dict[str, float] | None,
    ledger_path: str,
    noise_line: str | None = None,
) -> list[str]:
    if not results:
        return ["no candidate ran in this session"]
    width = max(len(r.candidate.id) for r in results)
    lines = [
        f"{'#':>3}  {'candidate':<{width}}  {'score':>8}  {'delta':>8}  {'interval':>19}  {'seeds':>5}  "
        f"{'verdict':<8}  {'secs':>6}  description"
    ]
    for r in results:
        delta = r.verdict.delta if r.verdict else None
        iv = r.verdict.interval if r.verdict else None
        interval = f"[{iv.low:+.4f}, {iv.high:+.4f}]" if iv and iv.n > 1 else "-"
        lines.append(
            f"{r.slot:>3}  {r.candidate.id:<{width}}  {_fmt(r.score, '.4f'):>8}  {_fmt(delta, '+.4f'):>8}  "
            f"{interval:>19}  {len(r.seed_scores):>5}  {r.status:<8}  {r.runtime_seconds:>6.0f}  "
            f"{r.candidate.description}"
        )
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if noise_line:
        lines.append(noise_line)
    if baseline and best:
        if best.id == baseline.id:
            lines.append(
                f"best = baseline {baseline.id}: validation {baseline.score:.4f} (nothing kept beat it)"
            )
        else:
            lines.append(
                f"best {best.id}: validation {best.score:.4f} vs baseline {baseline.id} "
                f"{baseline.score:.4f} ({best.score - baseline.score:+.4f})"
            )
        if test_scores:
            lines.append(
                f"held-out test (reported once, never used to select): best {test_scores['best']:.4f}, "
                f"baseline {test_scores['baseline']:.4f} ({test_scores['best'] - test_scores['baseline']:+.4f})"
            )
    lines.append(f"ledger: {ledger_path}")
    return lines
