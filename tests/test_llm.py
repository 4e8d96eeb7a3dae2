"""The LLM proposer against a real HTTP server on 127.0.0.1 speaking the chat-completions API with scripted
answers (pytest-httpserver; the openai client is not patched), driving the search with the scripted runner."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from scripted import Scripted
from werkzeug import Response

from pytest_autofl.control.program import Program
from pytest_autofl.core.errors import ProposerStopped, ProposerUnavailable
from pytest_autofl.ledger import store as ledger
from pytest_autofl.proposers.base import LLMSettings, ProposerOptions
from pytest_autofl.search.proposals import run_next

KEY = "sk-planted-never-to-be-written-0123456789"
PATH = "/v1/chat/completions"


def completion(content: str, finish: str = "stop", tokens_in: int = 1200, tokens_out: int = 80) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        },
    }


def answer(knobs=None, edits=(), hypothesis="server momentum against label skew", cites=()) -> str:
    return json.dumps(
        {"hypothesis": hypothesis, "knobs": knobs or {}, "edits": list(edits), "cites": list(cites)}
    )


@pytest.fixture
def llm(httpserver, make_session, monkeypatch):
    """A session whose proposer is the LLM behind the loopback server, after its baseline."""
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def make(program=None, cards_dir=None, **settings):
        program = program or Program(prose="Find what beats FedAvg.")
        llm_settings = LLMSettings(**{"model": "scripted", "timeout": 5.0, "retries": 1, **settings})
        s = make_session(proposer="llm", options=ProposerOptions(llm_settings, program, cards_dir))
        baseline = s.factory.make({}, source="baseline")
        s.record(s.run(baseline, 1))
        return s

    return make


def script(httpserver, *replies) -> None:
    for reply in replies:
        handler = httpserver.expect_ordered_request(PATH, method="POST")
        if isinstance(reply, Response):
            handler.respond_with_response(reply)
        elif callable(reply):
            handler.respond_with_handler(reply)
        else:
            handler.respond_with_json(reply)


def sent(httpserver, n: int = -1) -> list[dict]:
    """The messages of the n-th request the server received."""
    return json.loads(httpserver.log[n][0].get_data())["messages"]


def test_a_knob_answer_becomes_a_candidate_with_its_cost_and_transcript(llm, httpserver, tmp_path):
    s = llm()
    s.run_dir.mkdir(parents=True, exist_ok=True)
    (s.run_dir / "final_test.json").write_text('{"best": 0.987654}')  # a test score exists: never shown
    script(
        httpserver, completion(answer({"aggregator": "fedavgm", "server_momentum": 0.6}, cites=["Hsu 2019"]))
    )
    result = run_next(s, 2)
    s.record(result)
    row = ledger.read_rows(tmp_path / "results.tsv")[-1]
    assert (
        row.proposer == "llm"
        and row.params["aggregator"] == "fedavgm"
        and row.cites == ("Hsu 2019 (unverified)",)
    )  # no card library here
    assert row.description.startswith("server momentum against label skew")
    assert (row.cost.calls, row.cost.tokens_in, row.cost.tokens_out) == (1, 1200, 80) and row.cost.seconds > 0
    transcript = json.loads((result.trial_dir / "proposal.json").read_text())
    assert transcript["answers"][0]["finish_reason"] == "stop"
    prompt = sent(httpserver)[1]["content"]
    assert "Find what beats FedAvg." in prompt and "## Task profile" in prompt and "strategies.py" in prompt
    assert "Incumbent: fedavg-" in prompt  # the ledger view: the baseline row, with its validation score
    assert "0.987654" not in prompt and "final_test" not in prompt  # selection data only


def test_on_a_plateau_the_model_implements_the_reviews_three_runs(llm, httpserver, tmp_path, repo):
    from scripted import Scripted

    cards_dir = repo / "skills" / "literature" / "cards"
    s = llm(program=Program(prose="Beat FedAvg.", plateau_after=1), cards_dir=cards_dir)
    Scripted.effects = {"a smaller step": -0.05}
    cite = FEDLC
    script(
        httpserver,
        completion(answer({"lr": 0.03}, hypothesis="a smaller step")),
        completion(
            answer({}, edits=fedlc_edits(repo, 1.0, 0.25), hypothesis="FedLC as published", cites=[cite])
        ),
        completion(answer({}, edits=fedlc_edits(repo, 0.3, 0.25), hypothesis="FedLC, tau 0.3", cites=[cite])),
        completion(answer({"lr": 0.06}, hypothesis="my own ablation", cites=["Nobody 2031, a dream"])),
    )
    for slot in range(2, 6):
        s.record(run_next(s, slot))
    rows = ledger.read_rows(tmp_path / "results.tsv")
    assert [r.status for r in rows[:3]] == ["keep", "discard", "literature"]
    assert rows[2].source == "literature:fedlc" and rows[2].event == "lit-0001"
    linked = rows[3:]
    assert [r.proposer for r in linked] == ["llm"] * 3 and all(r.event == "lit-0001" for r in linked)
    assert linked[0].patch_sha and linked[0].cites == (cite,) and linked[2].cites[0].endswith("(unverified)")
    for n, run in ((1, "faithful"), (2, "variant"), (3, "ablation")):
        prompt = sent(httpserver, n)[1]["content"]
        assert (
            "## Your assignment\nLiterature review lit-0001" in prompt and f"Propose the {run} run" in prompt
        )
    assert (
        "Implement the faithful run (the method as published) of FedLC" in sent(httpserver, 1)[1]["content"]
    )
    assert "## Your assignment" not in sent(httpserver, 0)[1]["content"]


def test_a_code_edit_goes_through_the_strict_patch_path(llm, httpserver, repo):
    s = llm()
    source = (repo / "surfaces" / "strategies.py").read_text()
    search = '    """McMahan et al. 2017: step-weighted mean of client updates."""\n'
    assert source.count(search) == 1
    edit = {"file": "strategies.py", "search": search, "replace": search + "    # half steps\n"}
    script(httpserver, completion(answer(edits=[edit], hypothesis="a commented FedAvg")))
    result = run_next(s, 2)
    cand = result.candidate
    assert cand.family == "fedavg+patch" and cand.diff.startswith("--- a/strategies.py")
    assert dict(cand.files)["strategies.py"] == source.replace(search, search + "    # half steps\n")
    assert ("a commented FedAvg", 0, "-control") in Scripted.calls  # a code change runs its control


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ("{not json", "not one JSON object"),
        (answer({"lr": 5.0}), "knob 'lr' = 5.0 is out of bounds"),
        (answer(edits=[{"file": "../conftest.py", "search": "a", "replace": "b"}]), "is not a surface file"),
        (
            answer(edits=[{"file": "model.py", "search": "no such text", "replace": "b"}]),
            "does not occur in model.py",
        ),
        (answer(edits=[{"file": "model.py", "search": "import", "replace": "b"}]), "occurs"),
        (
            answer(
                edits=[
                    {
                        "file": "strategies.py",
                        "search": "import numpy as np",
                        "replace": "import numpy as np\nimport socket",
                    }
                ]
            ),
            "AF108",
        ),
    ],
)
def test_a_bad_answer_gets_a_repair_turn_with_the_precise_error(llm, httpserver, tmp_path, bad, named):
    s = llm()
    script(httpserver, completion(bad), completion(answer({"lr": 0.1})))
    result = run_next(s, 2)
    assert result.candidate.params["lr"] == 0.1 and result.candidate.cost.calls == 2
    repair = sent(httpserver)[-1]["content"]
    assert repair.startswith("Rejected: ") and named in repair, repair


def test_an_answer_cut_off_at_the_token_limit_is_repaired(llm, httpserver):
    s = llm()
    script(httpserver, completion(answer({"lr": 0.2})[:30], finish="length"), completion(answer({"lr": 0.2})))
    assert run_next(s, 2).candidate.params["lr"] == 0.2
    assert "cut off at the token limit" in sent(httpserver)[-1]["content"]


def test_three_bad_answers_are_an_invalid_row_with_the_reason_and_the_answers(llm, httpserver, tmp_path):
    s = llm()
    script(httpserver, *[completion(answer({"lr": 9.0}))] * 3)
    result = run_next(s, 2)
    s.record(result)
    row = ledger.read_rows(tmp_path / "results.tsv")[-1]
    assert row.status == "invalid" and row.target == "rejected" and row.proposer == "llm"
    assert "llm proposal rejected after 2 repair turn(s): knob 'lr' = 9.0 is out of bounds" in row.reason
    assert row.cost.calls == 3
    answers = json.loads((result.trial_dir / "proposal.json").read_text())["answers"]
    assert len(answers) == 3 and all("rejected" in a for a in answers)


def test_a_tried_proposal_is_not_run_the_model_is_told(llm, httpserver):
    s = llm()
    script(httpserver, completion(answer({})), completion(answer({"momentum": 0.5})))
    assert run_next(s, 2).candidate.params["momentum"] == 0.5
    assert "already ran or is running" in sent(httpserver)[-1]["content"]


def test_a_rate_limit_is_retried_and_a_server_error_is_no_candidate_and_no_row(llm, httpserver, tmp_path):
    s = llm()
    limited = Response("slow down", status=429, headers={"retry-after-ms": "10"})
    script(httpserver, limited, completion(answer({"lr": 0.3})))
    assert run_next(s, 2).candidate.params["lr"] == 0.3
    script(httpserver, *[Response("boom", status=500, headers={"retry-after-ms": "10"})] * 2)
    with pytest.raises(ProposerUnavailable, match="InternalServerError"):
        run_next(s, 3)
    assert len(ledger.read_rows(tmp_path / "results.tsv")) == 1  # the baseline only


def test_an_answer_slower_than_the_timeout_is_unavailable(llm, httpserver):
    s = llm(timeout=0.5, retries=0)

    def slow(request):
        time.sleep(2)
        return Response(json.dumps(completion(answer({"lr": 0.3}))), content_type="application/json")

    script(httpserver, slow)
    with pytest.raises(ProposerUnavailable, match="Timeout"):
        run_next(s, 2)


def test_the_session_caps_stop_proposing_and_the_key_is_written_nowhere(llm, httpserver, tmp_path):
    s = llm(max_calls=2)
    script(httpserver, completion(answer({"lr": 0.3})), completion(answer({"lr": 0.4})))
    for slot in (2, 3):
        s.record(run_next(s, slot))
    with pytest.raises(ProposerStopped, match="session cap reached \\(2 calls of 2"):
        run_next(s, 4)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not [p for p in written if KEY.encode() in p.read_bytes()]


FEDLC = "Zhang et al. 2022, arXiv:2209.00189"


def fedlc_edits(repo, tau: float, power: float) -> list[dict]:
    """The FedLC card's edits as a model would write them for one run."""
    import string

    from pytest_autofl.literature.cards import load_cards

    card = next(c for c in load_cards(repo / "skills" / "literature" / "cards") if c.id == "fedlc")
    values = {"tau": tau, "power": power}
    return [{k: string.Template(v).substitute(values) for k, v in e.items()} for e in card.edits]


@pytest.mark.e2e
def test_a_scripted_model_drives_real_flare_candidates_and_a_plateau_turns_to_the_literature(
    pytester, project, httpserver, monkeypatch, repo
):
    """Two model proposals (a knob set, a code edit) that lose, then the plateau (after 2) writes a
    literature row and the model implements its card's three runs; the report marks the review."""
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    shutil.copytree(repo / "skills", project / "skills")
    (project / "program.md").write_text(
        "---\nbenchmark: digits-smoke\nplateau: {after: 2}\n---\nDoes a smaller client step help here?\n"
    )
    search = "        mean = self._weighted_mean()\n        step = {}\n"
    strategies = (project / "surfaces" / "strategies.py").read_text()
    assert strategies.count(search) == 1
    edit = {
        "file": "strategies.py",
        "search": search,
        "replace": "        mean = self._weighted_mean()  # FedAdam, as before\n        step = {}\n",
    }
    script(
        httpserver,
        completion(answer({"lr": 0.001})),
        completion(answer({"lr": 0.002}, edits=[edit], hypothesis="a tiny client step, FedAdam commented")),
        *(
            completion(
                answer({}, edits=fedlc_edits(repo, tau, power), hypothesis=f"FedLC {run}", cites=[FEDLC])
            )
            for run, tau, power in (("faithful", 1.0, 0.25), ("variant", 0.3, 0.25), ("ablation", 1.0, 0.0))
        ),
    )
    args = [
        "--autofl-iterations=6",
        "--autofl-proposer=llm",
        "--autofl-llm-model=scripted",
        "--autofl-report=rep",
    ]
    result = pytester.runpytest(*args, "-rs", "-p", "no:cacheprovider")
    rows = ledger.read_rows(project / "results.tsv")
    out = result.stdout.str()[-3000:]
    assert [r.proposer for r in rows] == ["builtin", "llm", "llm", "literature", *["llm"] * 3], out
    assert rows[1].params["lr"] == 0.001 and rows[1].status == "discard", rows[1].reason
    assert rows[2].patch_sha and rows[2].status == "discard", rows[2].reason
    assert all(r.cost.calls == 1 for r in rows[1:3] + rows[4:])
    event, linked = rows[3], rows[4:]
    assert event.status == "literature" and event.event == "lit-0001" and event.source == "literature:fedlc"
    assert [r.description.split(" [")[0] for r in linked] == [
        "FedLC faithful",
        "FedLC variant",
        "FedLC ablation",
    ]
    assert all(r.event == "lit-0001" and r.patch_sha and r.cites == (FEDLC,) for r in linked)
    assert all(r.status in ("keep", "narrow", "discard") for r in linked), out
    assert (
        linked[2].score == rows[0].score
    )  # the ablation (a constant logit shift) is the baseline, bit for bit
    report = (project / "rep" / "report.md").read_text()
    assert "**lit-0001** literature review" in report and (project / "rep" / "progress.png").is_file()
    assert "Does a smaller client step help here?" in sent(httpserver, 0)[1]["content"]
    assert "benchmark: digits-smoke" not in sent(httpserver, 0)[1]["content"]  # front matter is not prose
    written = [p for p in project.rglob("*") if p.is_file()]
    assert not [p for p in written if KEY.encode() in p.read_bytes()]


def test_a_missing_model_or_key_is_a_clear_error_and_the_check_names_it(
    make_session, pytester, project, monkeypatch
):
    from pytest_autofl.core.errors import AutoFLError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AutoFLError, match="no model: --autofl-llm-model NAME.*OPENAI_API_KEY is not set"):
        make_session(proposer="llm")
    check = pytester.runpytest("--autofl-check", "--autofl-proposer=llm", "-p", "no:cacheprovider")
    assert check.ret == 1
    check.stdout.fnmatch_lines(
        ["*FAILED: llm proposer: no model*", "*FAILED: llm proposer: OPENAI_API_KEY is not set*"]
    )
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    check = pytester.runpytest(
        "--autofl-check", "--autofl-proposer=llm", "--autofl-llm-model=m", "-p", "no:cacheprovider"
    )
    check.stdout.fnmatch_lines(["*ok: llm proposer: model 'm', key set*"])
    assert KEY not in check.stdout.str()


@pytest.mark.e2e
def test_two_xdist_workers_never_run_the_same_proposal(pytester, project, httpserver, monkeypatch):
    """Both workers ask the model at once and get the same answer: one runs it, the other is told it is taken
    (a repair turn, or a new conversation if both reserved at once) and runs the model's next idea."""
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    same = completion(answer({"aggregator": "fedavgm", "server_momentum": 0.6}))
    script(httpserver, same, same, completion(answer({"lr": 0.1}, hypothesis="a larger client step")))
    args = ["--autofl-iterations=3", "--autofl-proposer=llm", "--autofl-llm-model=scripted", "-n", "2"]
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    rows = ledger.read_rows(project / "results.tsv")
    assert len(rows) == 3 and len({r.candidate_id for r in rows}) == 3, result.stdout.str()[-3000:]
    assert sorted(r.params["aggregator"] for r in rows[1:]) == ["fedavg", "fedavgm"]
    assert len(httpserver.log) == 3 and all(r.status != "invalid" for r in rows)
