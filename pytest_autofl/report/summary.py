"""Terminal summary of a search session: one line per candidate, then best versus baseline."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_autofl.search.campaign import Incumbent


def _fmt(value: str, spec: str) -> str:
    return "-" if value == "" else format(float(value), spec)


def summary_lines(
    rows: Sequence[dict[str, str]],
    baseline: Incumbent | None,
    best: Incumbent | None,
    test_scores: dict[str, float] | None,
    ledger_path: str,
    noise_line: str | None = None,
) -> list[str]:
    """One line per verdict row of this run (every xdist worker's), then best vs baseline."""
    if not rows:
        return ["no candidate ran in this session"]
    width = max(len(r["candidate_id"]) for r in rows)
    lines = [
        f"{'#':>3}  {'candidate':<{width}}  {'score':>8}  {'delta':>8}  {'interval':>19}  {'seeds':>5}  "
        f"{'verdict':<8}  {'secs':>6}  description"
    ]
    for number, r in enumerate(rows, start=1):
        clean = r["status"] not in ("crash", "invalid")
        interval = (
            f"[{float(r['ci_low']):+.4f}, {float(r['ci_high']):+.4f}]"
            if r["ci_low"] and r["ci_high"]
            else "-"
        )
        lines.append(
            f"{number:>3}  {r['candidate_id']:<{width}}  {_fmt(r['score'] if clean else '', '.4f'):>8}  "
            f"{_fmt(r['delta'], '+.4f'):>8}  {interval:>19}  {r['n_seeds'] or '0':>5}  {r['status']:<8}  "
            f"{float(r['runtime_seconds']):>6.0f}  {r['description']}"
        )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
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
