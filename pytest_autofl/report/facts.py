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

REPORT_JSON, REPORT_MD, PROGRESS_PNG = "report.json", "report.md", "progress.png"
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
    hib, confidence = scoring.higher_is_better, scoring.confidence
    base, best = analysis.baseline(frame), analysis.incumbent(frame)
    interval = (
        analysis.paired_interval(best, base, confidence=confidence, higher_is_better=hib)
        if (base is not None and best is not None)
        else None
    )
    sign = 1.0 if hib else -1.0
    ran = frame[frame["ran"]]
    first, last = frame["timestamp_utc"].min(), frame["timestamp_utc"].max()
    noise = frame["noise"].dropna()
    threshold = frame["threshold"].dropna()
    facts: dict[str, Any] = {
        "ledger": str(ledger_path),
        "generated_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "benchmark": str(frame["benchmark"].iloc[-1]),
        "contract_sha": str(frame["contract_sha"].iloc[-1]),
        "split_sha": sorted(set(frame["split_sha"]) - {""}),
        "budget": str(frame["budget"].iloc[-1]),
        "metric": {"name": scoring.name, "higher_is_better": hib, "from_contract": scoring.from_contract},
        "rows": len(frame),
        "rows_in_ledger": len(everything),
        "other_contracts": [
            {"benchmark": b, "contract_sha": c}
            for b, c in dict.fromkeys(zip(everything["benchmark"], everything["contract_sha"], strict=True))
            if c != frame["contract_sha"].iloc[-1]
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
        "baseline": None if base is None else {**_row_brief(base), "seed_scores": analysis.seed_scores(base)},
        "best": None
        if best is None
        else {
            **_row_brief(best),
            "params": json.loads(str(best["params"])) if best["params"] else {},
            "seed_scores": analysis.seed_scores(best),
            "gain_vs_baseline": None
            if base is None
            else sign * (float(best["score"]) - float(base["score"])),
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
        },
        "verdicts": analysis.verdict_counts(frame),
        "families": analysis.family_table(frame, None if base is None else float(base["score"]), hib),
        "runtime": {
            "total_seconds": float(frame["runtime_seconds"].sum()),
            "seed_runs": analysis.seed_runs(frame),
            "mean_seconds_per_run": _num(ran["seconds_per_run"].mean()) if not ran.empty else None,
            "first_utc": None if pd.isna(first) else first.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "last_utc": None if pd.isna(last) else last.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
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
        "literature_events": [_row_brief(r) for _, r in analysis.literature_events(frame).iterrows()],
        "progress": [
            {**_row_brief(row), "frontier": _num(f)}
            for (_, row), f in zip(frame.iterrows(), analysis.frontier(frame), strict=True)
        ],
    }
    return facts, frame


def _cell(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    text = format(value, spec) if spec else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(facts: dict[str, Any]) -> str:
    """``report.md``: the facts of ``report.json`` laid out for people."""
    m = facts["metric"]
    direction = "higher is better" if m["higher_is_better"] else "lower is better"
    if not m["from_contract"]:
        direction += " (assumed: the benchmark contract was not found)"
    rt = facts["runtime"]
    out = [
        f"# pytest-autofl report: {facts['benchmark']}",
        "",
        f"- ledger: `{facts['ledger']}` ({facts['rows']} rows under this contract, {facts['rows_in_ledger']} in all; "
        f"{facts['sessions']} session(s), {rt['first_utc'] or '-'} to {rt['last_utc'] or '-'})",
        f"- contract: `{facts['contract_sha']}`; split `{', '.join(s[:12] for s in facts['split_sha']) or '-'}`",
        f"- budget: `{facts['budget']}`",
        f"- metric: {m['name']} ({direction}); ran on: {', '.join(facts['environments'])}",
        f"- nvflare {', '.join(facts['versions']['nvflare']) or '-'}, torch {', '.join(facts['versions']['torch']) or '-'}; "
        f"commits {', '.join(c for c in facts['commits'] if c) or '-'}",
    ]
    if facts["other_contracts"]:
        others = ", ".join(f"{o['benchmark']} ({o['contract_sha'][:12]})" for o in facts["other_contracts"])
        out.append(f"- not in this report (other contracts in the ledger): {others}")
    out += ["", "## Result", ""]
    best, base, noise = facts["best"], facts["baseline"], facts["noise"]
    if best is None or base is None:
        out.append("No candidate was kept yet: there is no baseline to compare with.")
    elif best["row_id"] == base["row_id"]:
        out.append(
            f"Best = baseline `{base['candidate_id']}`: {m['name']} {base['score']:.4f} over "
            f"{base['n_seeds']} seeds; nothing beat it."
        )
    else:
        iv = best["interval_vs_baseline"]
        iv_text = (
            f", {iv['confidence']:.0%} paired t-interval [{_cell(iv['low'], '+.4f')}, {_cell(iv['high'], '+.4f')}] "
            f"over {iv['n_shared_seeds']} shared seeds"
            if iv
            else ""
        )
        out.append(
            f"Best kept `{best['candidate_id']}` ({best['description']}): {m['name']} {best['score']:.4f} vs "
            f"baseline `{base['candidate_id']}` {base['score']:.4f}, gain {best['gain_vs_baseline']:+.4f}{iv_text}."
        )
    if noise["sd"] is not None:
        out.append("")
        out.append(
            f"Noise floor (A/A, seed-to-seed sd of the baseline): {noise['sd']:.4f}; "
            f"keep threshold {_cell(noise['threshold'], '.4f')}."
        )
    session = facts.get("session")
    if session and session.get("test"):
        t = session["test"]
        out += [
            "",
            f"Held-out test (this session, reported once, never used to select): best {t['best']:.4f}, "
            f"baseline {t['baseline']:.4f} ({t['best'] - t['baseline']:+.4f}).",
        ]
    if best is not None:
        out += ["", "Reproduce the best:", "", "```", best["reproduce"], "```"]
    out += ["", "## Verdicts", "", "| " + " | ".join(facts["verdicts"]) + " |"]
    out += [
        "|" + "---|" * len(facts["verdicts"]),
        "| " + " | ".join(str(v) for v in facts["verdicts"].values()) + " |",
    ]
    out += [
        "",
        "## Method families",
        "",
        "| family | candidates | keep | narrow | discard | crash | invalid | best score | gain vs baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in facts["families"]:
        out.append(
            f"| {_cell(f['family'])} | {f['candidates']} | {f['keep']} | {f['narrow']} | {f['discard']} | "
            f"{f['crash']} | {f['invalid']} | {_cell(f['best_score'], '.4f')} | {_cell(f['best_gain_vs_baseline'], '+.4f')} |"
        )
    out += [
        "",
        "## Runtime",
        "",
        f"{rt['total_seconds'] / 60:.1f} min of candidate time over {rt['seed_runs']} FLARE runs "
        f"(mean {_cell(rt['mean_seconds_per_run'], '.1f')} s per run).",
        "",
        f"## Top {len(facts['top'])} candidates",
        "",
        "| # | candidate | verdict | score | gain vs its incumbent | interval | seeds | description |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in facts["top"]:
        interval = (
            f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]"
            if t["ci_low"] is not None and t["ci_high"] is not None
            else "-"
        )
        out.append(
            f"| {t['rank']} | `{t['candidate_id']}` | {t['status']} | {_cell(t['score'], '.4f')} | "
            f"{_cell(t['gain_vs_incumbent'], '+.4f')} | {interval} | {_cell(t['n_seeds'])} | {_cell(t['description'])} |"
        )
    if facts["top"]:
        out += [
            "",
            "Reproduce (re-runs the row on exactly its seeds; fails unless every score matches):",
            "",
            "```",
        ]
        out += [t["reproduce"] for t in facts["top"]]
        out.append("```")
    if facts["literature_events"]:
        out += ["", "## Literature loop", ""]
        out += [
            f"- line {e['line']}: `{e['candidate_id']}` {e['status']}: {e['description']}"
            for e in facts["literature_events"]
        ]
    out += ["", f"![progress]({PROGRESS_PNG})", ""]
    return "\n".join(out)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_report(
    ledger_path: Path,
    out_dir: Path,
    scoring: Scoring,
    *,
    benchmark: str | None = None,
    contract_sha: str | None = None,
    session: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write report.json, report.md and progress.png into ``out_dir`` (each replaced atomically); return the facts."""
    from pytest_autofl.report.plot import plot_progress

    facts, frame = build_facts(ledger_path, scoring, benchmark=benchmark, contract_sha=contract_sha)
    if session is not None:
        facts["session"] = session
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / PROGRESS_PNG, plot_progress(frame, facts))
    _atomic_write(out_dir / REPORT_MD, render_markdown(facts).encode())
    _atomic_write(out_dir / REPORT_JSON, (json.dumps(facts, indent=2) + "\n").encode())
    return facts
