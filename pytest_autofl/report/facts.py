"""The campaign report: ``report.json`` (facts), ``report.md`` (the same facts for a PR or paper) and
``progress.png``, built from the ledger alone so it can be regenerated at any time
(``python -m pytest_autofl report results.tsv``).
"""

from __future__ import annotations

import json
import math
import os
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from pytest_autofl.core.contract import Contract, load_contract
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.ledger import analysis
from pytest_autofl.report.markdown import CURVES_PNG, PROGRESS_PNG, render_markdown

REPORT_JSON, REPORT_MD = "report.json", "report.md"
TOP_N = 5


@dataclass(frozen=True)
class Scoring:
    """What the score column means and how sure an interval should be; the ledger does not say, the
    benchmark contract does."""

    name: str = "score"
    higher_is_better: bool = True
    confidence: float = 0.95
    from_contract: bool = False  # False: no contract was found; "higher is better" is an assumption

    @classmethod
    def of(cls, contract: Contract) -> Scoring:
        metric = contract.raw["metric"]
        return cls(
            f"{metric['split']} {metric['name']}",
            contract.higher_is_better,
            contract.statistics.confidence,
            from_contract=True,
        )


def scoring_for(benchmarks_dir: Path, benchmark: str) -> Scoring:
    """The contract's metric, or the documented assumption when the contract is not on disk."""
    try:
        return Scoring.of(load_contract(benchmarks_dir, benchmark))
    except AutoFLError:
        return Scoring()


def _num(value: Any) -> float | None:
    """A JSON-safe float (None for NaN / missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return float(value)


def _row_brief(row: pd.Series) -> dict[str, Any]:
    return {
        "line": int(row["line"]),
        "row_id": str(row["row_id"]),
        "candidate_id": str(row["candidate_id"]),
        "status": str(row["status"]),
        "score": _num(row["score"]),
        "n_seeds": None if row["n_seeds"] is pd.NA else int(row["n_seeds"]),
        "description": str(row["description"]),
    }


def reproduce_command(row: pd.Series, ledger_path: Path) -> str:
    """The command that re-runs a row on exactly its seeds and checks the scores reproduce."""
    return shlex.join(
        [
            "pytest",
            "--autofl-benchmark",
            str(row["benchmark"]),
            "--autofl-ledger",
            str(ledger_path),
            "--autofl-rerun",
            str(row["row_id"]),
        ]
    )


def _provenance(frame: pd.DataFrame, everything: pd.DataFrame, scoring: Scoring) -> dict[str, Any]:
    """What the rows ran under: contract, split, budget, metric, sessions, environments, versions, noise."""
    noise, threshold = frame["noise"].dropna(), frame["threshold"].dropna()
    sha = frame["contract_sha"].iloc[-1]
    return {
        "benchmark": str(frame["benchmark"].iloc[-1]),
        "contract_sha": str(sha),
        "split_sha": sorted(set(frame["split_sha"]) - {""}),
        "budget": str(frame["budget"].iloc[-1]),
        "metric": {
            "name": scoring.name,
            "higher_is_better": scoring.higher_is_better,
            "from_contract": scoring.from_contract,
        },
        "rows": len(frame),
        "rows_in_ledger": len(everything),
        "other_contracts": [
            {"benchmark": b, "contract_sha": c}
            for b, c in dict.fromkeys(zip(everything["benchmark"], everything["contract_sha"], strict=True))
            if c != sha
        ],
        "sessions": int(frame["row_id"].str.rsplit(":", n=1).str[0].nunique()),
        "environments": sorted(set(frame["env"])),
        "commits": list(dict.fromkeys(frame["commit"])),
        "versions": {
            "nvflare": sorted(set(frame["nvflare_version"]) - {""}),
            "torch": sorted(set(frame["torch_version"]) - {""}),
        },
        "noise": {
            "sd": _num(noise.iloc[-1]) if not noise.empty else None,
            "threshold": _num(threshold.iloc[-1]) if not threshold.empty else None,
        },
    }


def _best(best: pd.Series, base: pd.Series | None, scoring: Scoring, ledger_path: Path) -> dict[str, Any]:
    """The best kept row, with its gain over the baseline and the paired interval on their shared seeds."""
    hib, confidence = scoring.higher_is_better, scoring.confidence
    interval = (
        None
        if base is None
        else analysis.paired_interval(best, base, confidence=confidence, higher_is_better=hib)
    )
    sign = 1.0 if hib else -1.0
    return {
        **_row_brief(best),
        "params": json.loads(str(best["params"])) if best["params"] else {},
        "seed_scores": analysis.seed_scores(best),
        "gain_vs_baseline": None if base is None else sign * (float(best["score"]) - float(base["score"])),
        "interval_vs_baseline": None
        if interval is None
        else {
            "confidence": confidence,
            "n_shared_seeds": interval.n,
            "mean": interval.mean,
            "low": None if math.isinf(interval.low) else interval.low,
            "high": None if math.isinf(interval.high) else interval.high,
        },
        "reproduce": reproduce_command(best, ledger_path),
    }


def _runtime(frame: pd.DataFrame) -> dict[str, Any]:
    ran = frame[frame["ran"]]
    first, last = frame["timestamp_utc"].min(), frame["timestamp_utc"].max()
    return {
        "total_seconds": float(frame["runtime_seconds"].sum()),
        "seed_runs": analysis.seed_runs(frame),
        "mean_seconds_per_run": _num(ran["seconds_per_run"].mean()) if not ran.empty else None,
        "first_utc": None if pd.isna(first) else first.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "last_utc": None if pd.isna(last) else last.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def build_facts(
    ledger_path: Path,
    scoring: Scoring,
    *,
    benchmark: str | None = None,
    contract_sha: str | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The report's facts (JSON-ready) and the rows they describe: one contract of the ledger (the latest one
    unless ``benchmark`` / ``contract_sha`` say otherwise)."""
    everything = analysis.load_ledger(ledger_path)
    frame = analysis.one_contract(everything, benchmark, contract_sha)
    hib = scoring.higher_is_better
    base, best = analysis.baseline(frame), analysis.incumbent(frame)
    facts: dict[str, Any] = {
        "ledger": str(ledger_path),
        "generated_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **_provenance(frame, everything, scoring),
        "baseline": None if base is None else {**_row_brief(base), "seed_scores": analysis.seed_scores(base)},
        "best": None if best is None else _best(best, base, scoring, ledger_path),
        "curves": {  # per round, by seed: the baseline's and the best's (the report's curves plot)
            name: analysis.curves(row) if row is not None else {}
            for name, row in (("baseline", base), ("best", best))
        },
        "verdicts": analysis.verdict_counts(frame),
        "families": analysis.family_table(frame, None if base is None else float(base["score"]), hib),
        "runtime": _runtime(frame),
        "top": [
            {
                "rank": rank,
                **_row_brief(row),
                "gain_vs_incumbent": _num(row["delta"]),
                "ci_low": _num(row["ci_low"]),
                "ci_high": _num(row["ci_high"]),
                "reproduce": reproduce_command(row, ledger_path),
            }
            for rank, (_, row) in enumerate(analysis.top(frame, TOP_N, hib).iterrows(), start=1)
        ],
        "literature_events": [
            {
                **_row_brief(r),
                "event": str(r["event"]),
                "linked": [_row_brief(x) for _, x in analysis.linked(frame, str(r["event"])).iterrows()],
            }
            for _, r in analysis.literature_events(frame).iterrows()
        ],
        "progress": [
            {**_row_brief(row), "frontier": _num(f)}
            for (_, row), f in zip(frame.iterrows(), analysis.frontier(frame), strict=True)
        ],
    }
    return facts, frame


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def companions(facts: dict[str, Any]) -> str:
    """The files written beside report.md, as a report line names them."""
    from pytest_autofl.report.markdown import has_curves

    return ", ".join([REPORT_JSON, PROGRESS_PNG] + ([CURVES_PNG] if has_curves(facts) else []))


def write_report(
    ledger_path: Path,
    out_dir: Path,
    scoring: Scoring,
    *,
    benchmark: str | None = None,
    contract_sha: str | None = None,
    session: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write report.json, report.md, progress.png and (when the rows have per-round curves) curves.png into
    ``out_dir``, each replaced atomically; return the facts."""
    from pytest_autofl.report.plot import plot_curves, plot_progress

    facts, frame = build_facts(ledger_path, scoring, benchmark=benchmark, contract_sha=contract_sha)
    if session is not None:
        facts["session"] = session
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / PROGRESS_PNG, plot_progress(frame, facts))
    if (curves := plot_curves(facts)) is not None:
        _atomic_write(out_dir / CURVES_PNG, curves)
    _atomic_write(out_dir / REPORT_MD, render_markdown(facts).encode())
    _atomic_write(out_dir / REPORT_JSON, (json.dumps(facts, indent=2) + "\n").encode())
    return facts
