"""The ledger as a typed pandas DataFrame, and the questions people ask of it (which contract, what was kept,
how far the search got). The report is built from these helpers only, so it can always be regenerated from
``results.tsv`` alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pytest_autofl.core.candidate import family_of_id
from pytest_autofl.core.errors import LedgerError
from pytest_autofl.core.stats import Interval, t_interval
from pytest_autofl.core.verdict import LITERATURE, ROW_STATUSES
from pytest_autofl.ledger import store as ledger
from pytest_autofl.ledger.columns import COLUMNS, NUMERIC_COLUMNS
from pytest_autofl.ledger.typed_columns import TypedColumns

RAN = ("keep", "narrow", "discard")  # statuses whose score is a real measurement


def load_ledger(path: Path) -> pd.DataFrame:
    """Every row of the ledger, typed: numeric columns as floats (NaN when empty), ``n_seeds`` as Int64,
    ``timestamp_utc`` as a UTC datetime, plus ``line`` (the file line), ``family`` and ``ran``.

    A missing, empty or malformed ledger raises ``LedgerError`` naming the file and line; nothing is guessed.
    """
    if not path.exists():
        raise LedgerError(f"{path}: no such ledger")
    with ledger.bulk():
        table = ledger.read_table(path)
        typed = TypedColumns(table.columns, table.count)
    problems = ledger.problems_of(path, table, typed)
    if problems:
        raise LedgerError(ledger.summary(problems))
    if not table.count:
        raise LedgerError(f"{path}: the ledger has no rows yet")
    numbers = {c: np.array(typed.numbers[c], dtype=float) for c in NUMERIC_COLUMNS}  # None -> NaN
    frame = pd.DataFrame({c: numbers[c] if c in numbers else table.columns[c] for c in COLUMNS})
    frame["n_seeds"] = frame["n_seeds"].astype("Int64")
    frame["timestamp_utc"] = pd.to_datetime(frame["timestamp_utc"], utc=True, errors="coerce")
    frame["status"] = pd.Categorical(frame["status"], categories=list(ROW_STATUSES))
    frame.insert(0, "line", range(2, len(frame) + 2))
    frame["family"] = [family_of_id(c) for c in frame["candidate_id"]]
    frame["ran"] = frame["status"].isin(RAN)
    frame.loc[~frame["ran"], "score"] = math.nan  # crash / invalid rows carry a placeholder 0.0
    return frame


def select(
    frame: pd.DataFrame,
    *,
    benchmark: str | None = None,
    contract_sha: str | None = None,
    status: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """Rows of one benchmark / contract (a sha prefix is enough) / status or statuses."""
    mask = pd.Series(True, index=frame.index)
    if benchmark is not None:
        mask &= frame["benchmark"] == benchmark
    if contract_sha is not None:
        mask &= frame["contract_sha"].str.startswith(contract_sha)
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        mask &= frame["status"].isin(wanted)
    return frame[mask]


def latest_contract(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the contract the ledger's last row ran under: the campaign people usually mean."""
    return select(frame, contract_sha=str(frame["contract_sha"].iloc[-1]))


def one_contract(frame: pd.DataFrame, benchmark: str | None, contract_sha: str | None) -> pd.DataFrame:
    """Narrow to exactly one contract, or say which ones there are: scores under two contracts never mix."""
    chosen = select(frame, benchmark=benchmark, contract_sha=contract_sha)
    if chosen.empty:
        known = ", ".join(f"{b} ({c[:12]})" for b, c in _contracts(frame))
        raise LedgerError(f"no ledger rows for the selection; the ledger has: {known}")
    if chosen["contract_sha"].nunique() > 1:
        return latest_contract(chosen)
    return chosen


def _contracts(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(frame["benchmark"], frame["contract_sha"], strict=True)))


def baseline(frame: pd.DataFrame) -> pd.Series | None:
    """The first kept row without an incumbent: the campaign's baseline (schema defaults)."""
    rows = frame[(frame["status"] == "keep") & (frame["incumbent_id"] == "")]
    return rows.iloc[0] if not rows.empty else None


def incumbent(frame: pd.DataFrame) -> pd.Series | None:
    """The last kept row: the candidate a new one has to beat (keeps only ever replace the incumbent)."""
    rows = frame[frame["status"] == "keep"]
    return rows.iloc[-1] if not rows.empty else None


def frontier(frame: pd.DataFrame) -> pd.Series:
    """The incumbent's score after each row (NaN before the first keep): the kept frontier as a step line."""
    kept = frame["score"].where(frame["status"] == "keep")
    return kept.ffill()


def seed_scores(row: pd.Series) -> dict[int, float]:
    """The per-seed scores of one row (empty for crash / invalid)."""
    text = str(row["seed_scores"])
    return {int(k): float(v) for k, v in json.loads(text).items()} if text else {}


def curves(row: pd.Series) -> dict[int, list[float | None]]:
    """The per-round validation curve of each seed of one row (empty where the ledger has none)."""
    text = str(row.get("curves", "") or "")
    return (
        {int(k): [None if v is None else float(v) for v in c] for k, c in json.loads(text).items()}
        if text
        else {}
    )


def paired_interval(
    candidate: pd.Series, reference: pd.Series, *, confidence: float = 0.95, higher_is_better: bool = True
) -> Interval | None:
    """Two-sided t-interval of the mean per-seed gain of ``candidate`` over ``reference`` on their shared
    seeds; None when they share no seed."""
    a, b = seed_scores(candidate), seed_scores(reference)
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    sign = 1.0 if higher_is_better else -1.0
    return t_interval([sign * (a[s] - b[s]) for s in shared], (1 - confidence) / 2)


def seed_runs(frame: pd.DataFrame) -> int:
    """Simulations behind the rows: the selection seeds plus the confirmation seeds (both sides)."""
    total = 0
    for n, confirm in zip(frame["n_seeds"].fillna(0), frame["confirm"], strict=True):
        total += int(n)
        if confirm:
            total += 2 * len(json.loads(confirm)["seeds"])
    return total


def literature_events(frame: pd.DataFrame) -> pd.DataFrame:
    """The literature reviews' event rows (status ``literature``)."""
    return frame[frame["status"] == LITERATURE]


def linked(frame: pd.DataFrame, event: str) -> pd.DataFrame:
    """The candidate rows a literature review proposed."""
    return frame[(frame["event"] == event) & (frame["status"] != LITERATURE)]


def verdict_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in ROW_STATUSES}


def family_table(
    frame: pd.DataFrame, reference_score: float | None, higher_is_better: bool
) -> list[dict[str, Any]]:
    """Per method family: how many candidates, their verdicts, and the best measured score and gain."""
    table = []
    candidates = frame[frame["status"] != LITERATURE]
    for name, group in candidates.groupby("family", sort=True, observed=True):
        ranked = top(group, 1, higher_is_better)
        best = None if ranked.empty else ranked.iloc[0]
        entry: dict[str, Any] = {"family": str(name), "candidates": len(group)}
        entry.update(verdict_counts(group))
        entry["best_score"] = None if best is None else float(best["score"])
        entry["best_candidate"] = None if best is None else str(best["candidate_id"])
        entry["best_gain_vs_baseline"] = (
            None
            if best is None or reference_score is None
            else (1 if higher_is_better else -1) * (float(best["score"]) - reference_score)
        )
        table.append(entry)
    return table


def top(frame: pd.DataFrame, n: int, higher_is_better: bool) -> pd.DataFrame:
    """The n best measured rows, best first (crash / invalid never rank)."""
    ran = frame[frame["ran"]]
    return ran.sort_values("score", ascending=not higher_is_better, kind="stable").head(n)
