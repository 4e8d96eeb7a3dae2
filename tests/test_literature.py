"""The literature loop: the cited card library, the plateau watchdog, the review's scores, and a plateau in a
session that writes a ``literature`` row before its three linked candidates (scripted runner)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from scripted import Scripted

from pytest_autofl.__main__ import main
from pytest_autofl.control.plateau import watch
from pytest_autofl.control.program import Program
from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.contract import load_contract
from pytest_autofl.core.schema import load_schema
from pytest_autofl.ledger import store as ledger
from pytest_autofl.literature.cards import RUNS, CardError, card_problems, load_cards
from pytest_autofl.literature.review import review
from pytest_autofl.proposers.base import ProposerOptions


@pytest.fixture
def library(repo):
    surface_dir = repo / "surfaces"
    factory = CandidateFactory(load_schema(surface_dir))
    surface = {n: (surface_dir / n).read_text() for n in factory.schema.files}
    return load_cards(repo / "skills" / "literature" / "cards"), factory, surface_dir, surface


def test_the_library_holds_cited_runnable_methods(library):
    cards, factory, surface_dir, surface = library
    assert len({c.method for c in cards}) >= 8
    for card in cards:
        assert card.title and card.authors and card.venue and 2015 <= card.year <= 2026
        assert (card.arxiv or card.doi) and card.challenges and card.mechanism and card.risks
    assert card_problems(cards, factory, surface_dir, surface) == []
    runs = [c.candidate(run, factory, surface_dir, surface, "lit-0001") for c in cards for run in RUNS]
    assert len({r.key for r in runs}) == len(runs)  # faithful, variant and ablation are three experiments
    assert all(r.event == "lit-0001" and r.cites and "[src: " in r.description for r in runs)


def _card_file(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((Path(__file__).parent.parent / "skills/literature/cards/fedlc.yaml").read_text())
    raw.update(changes)
    (tmp_path / "cards").mkdir(exist_ok=True)
    (tmp_path / "cards" / "bad.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path / "cards"


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"arxiv": "FedLC"}, "arxiv 'FedLC' is not an arXiv id"),
        ({"title": ""}, "missing field(s) ['title']"),
        ({"priors": {"gain": 9}}, "priors must give"),
        ({"runs": {"faithful": {}}}, "runs must be ['faithful', 'variant', 'ablation']"),
        ({"url": "x"}, "unknown field(s) ['url']"),
    ],
)
def test_a_malformed_card_is_named(tmp_path, changes, named):
    with pytest.raises(CardError) as caught:
        load_cards(_card_file(tmp_path, **changes))
    assert "bad.yaml" in str(caught.value) and named in str(caught.value)


def test_a_card_whose_edit_does_not_apply_is_named_with_its_run(tmp_path, library):
    _, factory, surface_dir, surface = library
    edits = [{"file": "client_train.py", "search": "no such line\n", "replace": "x\n"}]
    cards = load_cards(_card_file(tmp_path, edits=edits))
    problems = card_problems(cards, factory, surface_dir, surface)
    assert len(problems) == 3 and "run faithful: edit 1: the search text does not occur" in problems[0]
    unsafe = [
        {"file": "client_train.py", "search": "import math\n", "replace": "import math\nimport socket\n"}
    ]
    problems = card_problems(load_cards(_card_file(tmp_path, edits=unsafe)), factory, surface_dir, surface)
    assert len(problems) == 3 and "AF108" in problems[0]


def _row(make_session, status, family="fedavg", **kw):
    """A ledger row as the session would write it (only the columns the watchdog and review read)."""
    from test_analysis import make_row

    from pytest_autofl.ledger.row import Row

    fields = make_row(1, status, 0.5 if status not in ("crash", "invalid", "literature") else None, **kw)
    fields["candidate_id"] = kw.get("candidate_id", f"{family}-0123456789")
    return Row.parse(fields)


def test_the_watchdog_counts_scored_rows_since_the_last_keep_or_review(make_session):
    rows = [_row(make_session, "keep", params=json.dumps({"lr": 0.05}))]
    rows += [_row(make_session, s, params=json.dumps({"lr": 0.1})) for s in ("discard", "crash", "narrow")]
    status = watch(rows, 2)
    assert status.reached and status.scored_since_reset == 2 and status.reset_source == "keep"
    assert "recommendation=literature" in status.lines() and "repeated_terms=lr=0.1:3" in status.lines()
    rows.append(_row(make_session, "literature", event="lit-0001"))
    status = watch(rows, 2)
    assert not status.reached and status.reset_source == "literature" and status.last_literature_index == 5
    assert watch(rows[:1], 1).recommendation == "continue" and watch([], 1).reason == "no baseline yet"


def test_the_review_scores_by_the_stated_formula_and_drops_what_cannot_run(repo, library, make_session):
    cards, factory, surface_dir, surface = library
    skew = load_contract(repo / "benchmarks", "digits-skew")
    rows = [
        _row(make_session, "keep"),
        _row(make_session, "discard", "fedadam+patch"),
        _row(make_session, "discard", "fedavg+prox"),
        _row(make_session, "discard", "fedsam-faithful", source="card:fedsam/faithful"),
    ]
    found = review(cards, rows, skew, factory, surface_dir, surface, since=1)
    assert found.event == "lit-0001"
    assert found.symptoms == ("label skew", "client drift", "slow convergence")
    by_id = {a.card.id: a for a in found.ranked}
    fedlc = by_id["fedlc"]  # label skew matches: gain 4+1; a code change: safety 4; fedavg kept: novelty 4
    assert (fedlc.gain, fedlc.contract_safety, fedlc.novelty) == (5, 4, 4)
    assert fedlc.total == 2 * 5 + 2 * 4 + 5 + 4 + 4 - 1 == 30
    assert by_id["fedyogi"].novelty == 2  # its family (fedadam) only ever lost
    assert found.card.id == "fedlc" and [c.family for c in found.batch] == [f"fedlc-{r}" for r in RUNS]
    assert dict(found.dropped)["fedsam"] == "already run"
    tight = replace(skew, raw={**skew.raw, "budget": {**skew.raw["budget"], "max_cpu_ratio": 1.2}})
    dropped = dict(review(cards, rows[:3], tight, factory, surface_dir, surface, 1).dropped)
    assert dropped["fedsam"] == "compute 2x: not below the contract's cap of 1.2x" and "fedntd" in dropped
    assert dict(found.dropped)["fedntd"] == "compute 1.3x: not below the contract's cap of 1.3x"  # at the cap
    narrow = CandidateFactory(Program(files=("strategies.py",)).narrow(factory.schema))
    dropped = dict(review(cards, rows[:3], skew, narrow, surface_dir, surface, 1).dropped)
    assert "not allowed here" in dropped["fedlc"] and "fedexp" not in dropped


def test_a_plateau_writes_a_literature_row_before_three_linked_candidates(make_session, repo, tmp_path):
    options = ProposerOptions(program=Program(plateau_after=2), cards_dir=repo / "skills/literature/cards")
    s = make_session(options=options, benchmark="digits-skew")
    Scripted.effects = {"fedprox_mu=0.01": -0.05, "fedprox_mu=0.1": -0.06}
    for slot in range(1, 7):
        s.record(s.run(s.next_candidate(), slot))
    rows = ledger.read_rows(tmp_path / "results.tsv")
    assert [r.status for r in rows[:3]] == ["keep", "discard", "discard"]
    event = rows[3]
    assert event.status == "literature" and event.score is None and event.event == "lit-0001"
    assert event.description.startswith("literature review: label skew; client drift; selected fedlc")
    assert event.budget == "literature_loop" and event.cites and (tmp_path / event.target).is_file()
    assert "score = 2*gain + 2*contract_safety" in (tmp_path / event.target).read_text()
    linked = rows[4:]
    assert [r.source for r in linked] == [f"card:fedlc/{run}" for run in ("faithful", "variant", "ablation")][
        :3
    ]
    assert all(r.event == "lit-0001" and r.patch_sha and r.cites == event.cites for r in linked)
    fields = ledger.read_fields(tmp_path / "results.tsv")
    assert fields[3]["score"] == "" and fields[4]["event"] == "lit-0001"


def test_the_cli_says_what_the_watchdog_and_the_loop_would_do(make_session, repo, tmp_path, capsys):
    options = ProposerOptions(program=Program(plateau_after=2), cards_dir=repo / "skills/literature/cards")
    s = make_session(options=options, benchmark="digits-skew")
    Scripted.effects = {"fedprox_mu=0.01": -0.05, "fedprox_mu=0.1": -0.06}
    common = ["--benchmarks-dir", str(repo / "benchmarks"), "--surface-dir", str(repo / "surfaces")]
    ledger_path = str(tmp_path / "results.tsv")
    s.record(s.run(s.next_candidate(), 1))
    assert (
        main(["next", ledger_path, "--json", "--cards-dir", str(repo / "skills/literature/cards"), *common])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["action"] == "propose"
    for slot in (2, 3):
        s.record(s.run(s.next_candidate(), slot))
    assert main(["plateau", ledger_path, "--after", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "recommendation=literature" and "scored_since_reset=2" in lines
    args = ["next", ledger_path, "--json", "--cards-dir", str(repo / "skills/literature/cards"), *common]
    (tmp_path / "program.md").write_text("---\nplateau: {after: 2}\n---\n")
    assert main([*args, "--program", str(tmp_path / "program.md")]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert advice["action"] == "literature" and advice["details"]["card"] == "fedlc"
    s.record(s.run(s.next_candidate(), 4))  # the search writes the review and runs its first linked candidate
    assert main([*args, "--program", str(tmp_path / "program.md")]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert advice["action"] == "linked" and "FedLC variant" in advice["details"]["candidate"]
    assert main(["plateau", str(tmp_path / "missing.tsv")]) == 2
    assert "no rows yet" in capsys.readouterr().err


def test_citations_that_name_no_card_are_marked_unverified_and_the_model_sees_the_library(
    library, make_session
):
    from dataclasses import replace as copy

    from pytest_autofl.literature.cards import library_text, verified
    from pytest_autofl.proposers.llm.prompt import messages

    cards, factory, _, _ = library
    cites = ("Zhang et al. 2022, arXiv:2209.00189", "Someone 2031, a method nobody wrote")
    made = copy(factory.make({"lr": 0.1}), cites=cites, description="lr 0.1 [src: " + "; ".join(cites) + "]")
    checked = verified(made, cards)
    assert checked.cites == (cites[0], cites[1] + " (unverified)")
    assert checked.description.endswith("; Someone 2031, a method nobody wrote (unverified)]")
    assert verified(checked, cards) == checked  # marked once
    text = library_text(cards)
    assert len(text.splitlines()) == len(cards) and "- fedlc: FedLC, Zhang et al. 2022" in text
    prompt = messages(make_session().view(), "", "", text)[1]["content"]
    assert "## Method cards (the literature library)\n- fedadagrad: FedAdagrad" in prompt
