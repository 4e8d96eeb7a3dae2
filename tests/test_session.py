"""The search loop's bookkeeping (verdicts, incumbent, ledger rows, resume) without running NVFlare."""

from __future__ import annotations

import json

import pytest

from pytest_autofl import ledger
from pytest_autofl.runner import SeedRun
from pytest_autofl.session import AutoflSession, TrialResult


@pytest.fixture
def make_session(repo, tmp_path):
    def make():
        return AutoflSession(
            rootdir=tmp_path,
            benchmarks_dir=repo / "benchmarks",
            benchmark="digits",
            surface_dir=repo / "surfaces",
            workdir=tmp_path / ".autofl",
            ledger_path=tmp_path / "results.tsv",
            progress=lambda line: None,
        )

    return make


def finished(session, slot, scores, error=None, violations=()):
    cand = session.next_candidate()
    runs = [
        SeedRun(seed=s, directory=session.run_dir / f"{slot}" / f"seed-{s}", score=v, n_params=8970)
        for s, v in zip(session.contract.seeds, scores, strict=True)
    ]
    if error:
        runs[-1].error = error
    return TrialResult(
        slot=slot,
        candidate=cand,
        trial_dir=session.run_dir / f"{slot}",
        runs=runs,
        violations=list(violations),
        runtime_seconds=1.0,
    )


def test_verdicts_move_the_incumbent_and_land_in_the_ledger(make_session, tmp_path):
    s = make_session()
    assert s.record(finished(s, 1, [0.50, 0.52, 0.54])).status == "keep"  # baseline
    assert s.record(finished(s, 2, [0.60, 0.61, 0.62])).status == "keep"
    assert s.record(finished(s, 3, [0.61, 0.60, 0.63])).status == "narrow"  # +0.003, worse on one seed
    assert s.record(finished(s, 4, [0.9, 0.9, 0.9], error="seed 2: boom")).status == "crash"
    assert s.record(finished(s, 5, [0.9, 0.9, 0.9], violations=["same seeds: ..."])).status == "invalid"
    assert s.record(finished(s, 6, [0.10, 0.10, 0.10])).status == "discard"
    assert s.incumbent.id == s.results[1].candidate.id and s.baseline.id == s.results[0].candidate.id
    rows = ledger.read_rows(tmp_path / "results.tsv")
    assert [r["status"] for r in rows] == ["keep", "keep", "narrow", "crash", "invalid", "discard"]
    assert rows[1]["incumbent_id"] == rows[0]["candidate_id"] and rows[1]["delta"] == "+0.090000"
    assert [r["score"] for r in rows[3:5]] == ["0.000000", "0.000000"]
    assert rows[4]["reason"] == "fairness invariant violated: same seeds: ..."
    assert json.loads(rows[0]["seed_scores"]) == {"0": 0.5, "1": 0.52, "2": 0.54}
    assert rows[0]["budget"].startswith("clients=4,alpha=0.3,rounds=5")


def test_a_new_session_continues_the_campaign(make_session):
    first = make_session()
    first.record(finished(first, 1, [0.50, 0.52, 0.54]))
    first.record(finished(first, 2, [0.60, 0.61, 0.62]))
    tried = {r.candidate.id for r in first.results}
    second = make_session()
    assert second.baseline.id == first.results[0].candidate.id
    assert second.incumbent.id == first.results[1].candidate.id
    assert second.next_candidate().id not in tried
    assert second.record(finished(second, 1, [0.603, 0.613, 0.623])).status == "narrow"
