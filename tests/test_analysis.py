"""The typed ledger frame and the questions the report asks of it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_autofl.core.errors import LedgerError
from pytest_autofl.ledger import analysis, writer
from pytest_autofl.ledger import store as ledger

FIXTURE = Path(__file__).parent / "fixtures" / "smoke20.tsv"  # a real 20-candidate digits-smoke search


def make_row(i: int, status: str, score: float | None, **extra: str) -> dict[str, str]:
    """A row's fields; a literature row (no score) when ``status`` is literature."""
    row = {c: "" for c in ledger.COLUMNS}
    row.update(
        commit="abc",
        score="" if status == "literature" else "0.000000" if score is None else f"{score:.6f}",
        runtime_seconds="10.0",
        status=status,
        target="knobs: lr",
        description=f"candidate {i}",
        candidate_id=f"fedavg-{i:010d}",
        benchmark="bench",
        contract_sha="c" * 64,
        row_id=f"host:1:{i}",
        timestamp_utc=f"2026-11-25T10:{i:02d}:00Z",
    )
    if score is not None:
        row.update(
            seeds="[0, 1]", seed_scores=json.dumps({"0": score - 0.01, "1": score + 0.01}), n_seeds="2"
        )
    row.update(extra)
    return row


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    for row in rows:
        writer.append_fields(path, row)
    return path


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return write(
        tmp_path / "results.tsv",
        [
            make_row(1, "keep", 0.50, target="baseline", noise="0.020000", threshold="0.010000"),
            make_row(2, "discard", 0.48, incumbent_id="fedavg-0000000001", delta="-0.020000"),
            make_row(3, "crash", None, reason="seed 0: boom"),
            make_row(4, "keep", 0.60, incumbent_id="fedavg-0000000001", candidate_id="fedavgm-0000000004"),
            make_row(5, "invalid", None, candidate_id="rejected-0000000005", target="rejected"),
            make_row(6, "narrow", 0.61, confirm=""),
            make_row(
                7,
                "discard",
                0.55,
                confirm=json.dumps({"seeds": [1000], "candidate": {"1000": 0.5}, "incumbent": {"1000": 0.6}}),
            ),
        ],
    )


def test_the_frame_is_typed(campaign):
    frame = analysis.load_ledger(campaign)
    assert frame["score"].dtype == "float64" and frame["runtime_seconds"].dtype == "float64"
    assert str(frame["n_seeds"].dtype) == "Int64"
    assert str(frame["timestamp_utc"].dtype).startswith("datetime64")
    assert frame["line"].tolist() == list(range(2, 9))
    assert math.isnan(frame["score"].iloc[2])  # a crash's placeholder 0.0 is not a score
    assert frame["ran"].tolist() == [True, True, False, True, False, True, True]
    assert frame["family"].tolist()[:5] == ["fedavg", "fedavg", "fedavg", "fedavgm", "rejected"]


def test_a_real_ledger_loads(tmp_path):
    frame = analysis.load_ledger(FIXTURE)
    assert len(frame) == 20 and frame["benchmark"].unique().tolist() == ["digits-smoke"]
    assert analysis.verdict_counts(frame) == {
        "keep": 2,
        "narrow": 9,
        "discard": 9,
        "screened": 0,
        "crash": 0,
        "invalid": 0,
        "literature": 0,
    }
    assert "fedavg+prox" in set(frame["family"])


def test_escaped_fields_come_back_unescaped(tmp_path):
    path = write(tmp_path / "r.tsv", [make_row(1, "keep", 0.5, description="tab\there\nnewline \\ end")])
    assert analysis.load_ledger(path)["description"].iloc[0] == "tab\there\nnewline \\ end"


def test_baseline_incumbent_and_frontier(campaign):
    frame = analysis.load_ledger(campaign)
    assert analysis.baseline(frame)["candidate_id"] == "fedavg-0000000001"
    assert analysis.incumbent(frame)["candidate_id"] == "fedavgm-0000000004"
    assert analysis.frontier(frame).tolist() == [0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6]


def test_select_and_one_contract(campaign):
    write(campaign, [make_row(8, "keep", 0.9, benchmark="other", contract_sha="d" * 64)])
    frame = analysis.load_ledger(campaign)
    assert len(analysis.select(frame, benchmark="bench")) == 7
    assert len(analysis.select(frame, contract_sha="dddd")) == 1
    assert len(analysis.select(frame, status=["crash", "invalid"])) == 2
    assert analysis.one_contract(frame, None, None)["benchmark"].tolist() == ["other"]  # the latest contract
    assert len(analysis.one_contract(frame, "bench", None)) == 7
    with pytest.raises(LedgerError, match=r"the ledger has: bench \(cccccccccccc\), other \(dddddddddddd\)"):
        analysis.one_contract(frame, "nope", None)


def test_paired_interval_on_shared_seeds(campaign):
    frame = analysis.load_ledger(campaign)
    best, base = frame.iloc[3], frame.iloc[0]
    iv = analysis.paired_interval(best, base)
    assert iv is not None and iv.n == 2 and iv.mean == pytest.approx(0.10)
    assert iv.low == pytest.approx(0.10) and iv.high == pytest.approx(0.10)  # identical gains on both seeds
    flipped = analysis.paired_interval(best, base, higher_is_better=False)
    assert flipped is not None and flipped.mean == pytest.approx(-0.10)
    assert analysis.paired_interval(best, frame.iloc[2]) is None  # a crash shares no seed


def test_seed_runs_count_confirmations(campaign):
    frame = analysis.load_ledger(campaign)
    assert analysis.seed_runs(frame) == 5 * 2 + 2  # five scored rows x 2 seeds, one confirm seed x 2 sides


def test_literature_events_and_families(campaign):
    frame = analysis.load_ledger(campaign)
    assert analysis.literature_events(frame).empty
    write(
        campaign,
        [
            make_row(
                8, "literature", None, event="lit-0001", source="literature:fedlc", candidate_id="lit-0001"
            ),
            make_row(9, "discard", 0.52, event="lit-0001", candidate_id="fedlc-faithful-0000000009"),
        ],
    )
    frame = analysis.load_ledger(campaign)
    assert analysis.literature_events(frame)["line"].tolist() == [9]
    assert analysis.linked(frame, "lit-0001")["line"].tolist() == [10]
    assert math.isnan(frame["score"].iloc[7]) and not frame["ran"].iloc[7]
    table = {f["family"]: f for f in analysis.family_table(frame, 0.5, True)}
    assert "lit-0001" not in table and table["fedlc-faithful"]["discard"] == 1
    assert table["fedavg"]["candidates"] == 5 and table["fedavg"]["crash"] == 1
    assert table["fedavg"]["best_score"] == pytest.approx(0.61)
    assert table["fedavgm"]["best_gain_vs_baseline"] == pytest.approx(0.10)
    assert table["rejected"]["best_score"] is None and table["rejected"]["invalid"] == 1


def test_top_ranks_only_measured_rows(campaign):
    frame = analysis.load_ledger(campaign)
    assert analysis.top(frame, 3, True)["score"].tolist() == [0.61, 0.6, 0.55]
    assert analysis.top(frame, 2, False)["score"].tolist() == [0.48, 0.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no rows yet"),
        ("a\tb\n", "not a pytest-autofl ledger header"),
        (ledger.header_line() + "x\ty\n", ":2: malformed row: 2 fields"),
    ],
)
def test_bad_ledgers_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(LedgerError, match=message):
        analysis.load_ledger(path)


def test_missing_ledger_and_bad_values(tmp_path):
    with pytest.raises(LedgerError, match="no such ledger"):
        analysis.load_ledger(tmp_path / "nope.tsv")
    path = write(
        tmp_path / "r.tsv", [make_row(1, "keep", 0.5, runtime_seconds="fast"), make_row(2, "maybe", 0.5)]
    )
    with pytest.raises(LedgerError) as info:
        analysis.load_ledger(path)
    assert "r.tsv:2: column runtime_seconds = 'fast' is not a number" in str(info.value)
    assert "r.tsv:3: unknown status 'maybe'" in str(info.value)


@given(
    st.lists(st.tuples(st.sampled_from(["keep", "narrow", "discard", "crash"]), st.floats(0, 1)), max_size=12)
)
def test_frontier_is_the_last_keep_so_far(rows):
    frame = pd.DataFrame(
        {"status": [s for s, _ in rows], "score": [v if s != "crash" else math.nan for s, v in rows]},
        dtype=object,
    ).astype({"score": "float64"})
    expected, current = [], math.nan
    for status, value in rows:
        if status == "keep":
            current = value
        expected.append(current)
    got = analysis.frontier(frame).tolist()
    assert len(got) == len(expected)
    assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, expected, strict=True))
