"""Terminal summary of a search session: one line per candidate, then best versus baseline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pytest_autofl.ledger.row import Row


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def interval_text(row: Row) -> str:
    """The row's confidence interval of the gain as the summary and CI reports show it ("-": none)."""
    if row.ci_low is None or row.ci_high is None:
        return "-"
    return f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]"


def junit_properties(row: Row) -> list[tuple[str, str]]:
    """What a CI system that reads ``--junitxml`` shows of a candidate: its verdict, score, interval, reason."""
    return [
        ("autofl_candidate", row.candidate_id),
        ("autofl_verdict", row.status),
        ("autofl_score", _fmt(row.score if row.clean else None, ".4f")),
        ("autofl_delta", _fmt(row.delta, "+.4f")),
        ("autofl_interval", interval_text(row)),
        ("autofl_seeds", str(len(row.seed_scores))),
        ("autofl_reason", row.reason),
    ]


def verdicts_line(rows: Sequence[Row]) -> str:
    """The summary's count of verdicts: ``verdicts: crash 1, keep 2``."""
    counts = Counter(r.status for r in rows)
    return "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def machine_line(rows: Sequence[Row]) -> str | None:
    """What the machine did to the session's runs, if anything: seed runs re-run, messaging errors recovered."""
    retried, recovered = sum(len(r.retry_reasons) for r in rows), sum(r.recovered or 0 for r in rows)
    if not (retried or recovered):
        return None
    return (
        f"machine: {retried} seed run(s) re-run after an infrastructure failure, {recovered} messaging error(s) "
        "FLARE recovered from (not the candidates'; columns retries, retry_reasons, recovered)"
    )


def summary_lines(
    rows: Sequence[Row],
    baseline: Row | None,
    best: Row | None,
    test_scores: dict[str, float] | None,
    ledger_path: str,
    noise_line: str | None = None,
) -> list[str]:
    """One line per verdict row of this run (every xdist worker's), then best vs baseline."""
    if not rows:
        return ["no candidate ran in this session"]
    width = max(len(r.candidate_id) for r in rows)
    lines = [
        f"{'#':>3}  {'candidate':<{width}}  {'score':>8}  {'delta':>8}  {'interval':>19}  {'seeds':>5}  "
        f"{'verdict':<8}  {'secs':>6}  description"
    ]
    for number, r in enumerate(rows, start=1):
        interval = interval_text(r)
        lines.append(
            f"{number:>3}  {r.candidate_id:<{width}}  {_fmt(r.score if r.clean else None, '.4f'):>8}  "
            f"{_fmt(r.delta, '+.4f'):>8}  {interval:>19}  {len(r.seed_scores):>5}  {r.status:<8}  "
            f"{r.runtime_seconds:>6.0f}  {r.description}"
        )
    lines.append(verdicts_line(rows))
    if machine := machine_line(rows):
        lines.append(machine)
    if noise_line:
        lines.append(noise_line)
    if baseline and best:
        best_score, base_score = best.score or 0.0, baseline.score or 0.0
        if best.candidate_id == baseline.candidate_id:
            lines.append(
                f"best = baseline {baseline.candidate_id}: validation {base_score:.4f} (nothing kept beat it)"
            )
        else:
            lines.append(
                f"best {best.candidate_id}: validation {best_score:.4f} vs baseline {baseline.candidate_id} "
                f"{base_score:.4f} ({best_score - base_score:+.4f})"
            )
        if test_scores:
            lines.append(
                f"held-out test (reported once, never used to select): best {test_scores['best']:.4f}, "
                f"baseline {test_scores['baseline']:.4f} ({test_scores['best'] - test_scores['baseline']:+.4f})"
            )
    lines.append(f"ledger: {ledger_path}")
    return lines
