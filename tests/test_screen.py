"""The screening cascade on a scripted runner: a hopeless candidate stops at its screen (a ``screened`` row with
both screen scores, no contract seed run, no verdict statistics); others go on unchanged; the incumbent's screen
runs once; the cascade can be switched off; and the contract's ``screen`` block is validated."""

from __future__ import annotations

import json
import shutil

import pytest
from scripted import Scripted
from test_registries import ListProposer

from pytest_autofl.core.contract import load_contract
from pytest_autofl.core.errors import ContractError
from pytest_autofl.ledger import store as ledger
from pytest_autofl.proposers import PROPOSERS

SCREEN = {"rounds": 1, "seed": 500, "margin": 0.05}


def screened_benchmarks(repo, tmp_path, screen=SCREEN):
    """A copy of the digits benchmark whose contract names a screen, pinned."""
    root = tmp_path / "benchmarks"
    shutil.copytree(repo / "benchmarks" / "digits", root / "digits")
    path = root / "digits" / "contract.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "screen": screen}))
    (root / "digits" / "contract.sha256").write_text(load_contract(root, "digits").sha + "\n")
    return root


def search(make_session, repo, tmp_path, **kw):
    PROPOSERS.register("list", ListProposer)
    Scripted.effects = {"aggregator=median": -0.3, "aggregator=fedavgm": 0.2}
    s = make_session(proposer="list", benchmarks_dir=screened_benchmarks(repo, tmp_path), **kw)
    for slot in range(1, 4):
        s.record(s.run(s.next_candidate(), slot))
    return ledger.read_rows(tmp_path / "results.tsv")


def test_a_hopeless_candidate_stops_at_its_screen(make_session, repo, tmp_path):
    rows = search(make_session, repo, tmp_path)
    assert [(r.params["aggregator"], r.status) for r in rows] == [
        ("fedavg", "keep"),
        ("median", "screened"),
        ("fedavgm", "keep"),
    ]
    median, fedavgm = rows[1], rows[2]
    assert (
        median.score is None and median.seed_scores == {} and median.delta is None
    )  # no contract statistics
    assert median.screen_score == pytest.approx(median.screen_incumbent - 0.3)
    assert (
        "screen (1 rounds, seed 500)" in median.reason and "more than the margin 0.05 worse" in median.reason
    )
    assert fedavgm.screen_score == pytest.approx(fedavgm.screen_incumbent + 0.2) and fedavgm.seed_scores
    ran = [(what, seed) for what, seed, _tag in Scripted.calls]
    assert [seed for what, seed in ran if what == "aggregator=median"] == [500]  # the screen, nothing more
    assert [w for w, s in ran if s == 500] == [
        "aggregator=median",
        "baseline (schema defaults)",
        "aggregator=fedavgm",
    ]
    assert (
        ran.count(("baseline (schema defaults)", 500)) == 1
    )  # the incumbent's screen ran once for both candidates


def test_the_cascade_can_be_switched_off(make_session, repo, tmp_path):
    rows = search(make_session, repo, tmp_path, screen=False)
    assert [r.status for r in rows] == ["keep", "discard", "keep"]
    assert all(r.screen_score is None for r in rows)
    assert not [c for c in Scripted.calls if c[1] == 500]


@pytest.mark.parametrize(
    "screen, named",
    [
        ({"rounds": 1, "seed": 500}, "must be a mapping of exactly 'rounds', 'seed' and 'margin'"),
        ({**SCREEN, "rounds": 9}, "'screen.rounds' = 9 must be below budget.rounds"),
        ({**SCREEN, "seed": 0}, "'screen.seed' must be fresh"),
        ({**SCREEN, "seed": 1000}, "'screen.seed' must be fresh"),
        ({**SCREEN, "margin": -1}, "field 'screen.margin' = -1 must be a finite number >= 0"),
    ],
)
def test_a_bad_screen_block_is_named(repo, tmp_path, screen, named):
    with pytest.raises(ContractError) as caught:
        screened_benchmarks(repo, tmp_path, screen)
    assert named in str(caught.value)
