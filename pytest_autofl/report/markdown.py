"""``report.md``: the facts of ``report.json`` laid out for people, one function per section."""

from __future__ import annotations

from typing import Any

PROGRESS_PNG = "progress.png"
CURVES_PNG = "curves.png"  # per-round validation, baseline vs best: only when the rows have curves


def _cell(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    text = format(value, spec) if spec else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _header(facts: dict[str, Any]) -> list[str]:
    m, rt = facts["metric"], facts["runtime"]
    direction = "higher is better" if m["higher_is_better"] else "lower is better"
    if not m["from_contract"]:
        direction += " (assumed: the benchmark contract was not found)"
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
    return out


def _result(facts: dict[str, Any]) -> list[str]:
    m, best, base, noise = facts["metric"], facts["best"], facts["baseline"], facts["noise"]
    out = ["", "## Result", ""]
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
    return out


def _tables(facts: dict[str, Any]) -> list[str]:
    rt = facts["runtime"]
    out = ["", "## Verdicts", "", "| " + " | ".join(facts["verdicts"]) + " |"]
    out += [
        "|" + "---|" * len(facts["verdicts"]),
        "| " + " | ".join(str(v) for v in facts["verdicts"].values()) + " |",
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
    ]
    return out


def _top(facts: dict[str, Any]) -> list[str]:
    out = [
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
        for e in facts["literature_events"]:
            out.append(f"- line {e['line']}: **{e['event']}** {e['description']}")
            out += [
                f"  - line {x['line']}: `{x['candidate_id']}` {x['status']}"
                + (f" {x['score']:.4f}" if x["score"] is not None else "")
                + f": {x['description']}"
                for x in e["linked"]
            ]
    return out


def render_markdown(facts: dict[str, Any]) -> str:
    return "\n".join(
        [
            *_header(facts),
            *_result(facts),
            *_tables(facts),
            *_top(facts),
            "",
            f"![progress]({PROGRESS_PNG})",
            *(["", f"![per-round validation: baseline vs best]({CURVES_PNG})"] if has_curves(facts) else []),
            "",
        ]
    )


def has_curves(facts: dict[str, Any]) -> bool:
    return any(facts.get("curves", {}).values())
