"""What CI systems show: each candidate's verdict, score, interval and reason as ``--junitxml`` properties (alone
and under pytest-xdist, search candidates and candidate files), and a failed ``--autofl-check`` as one GitHub
Actions error annotation per violation, on its file and line."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_registries import CONFTEST

from pytest_autofl.ledger import store as ledger
from pytest_autofl.preflight import github_annotation

PROPERTIES = [
    "autofl_candidate",
    "autofl_verdict",
    "autofl_score",
    "autofl_delta",
    "autofl_interval",
    "autofl_seeds",
    "autofl_reason",
]


def _properties(xml: Path) -> dict[str, dict[str, str]]:
    """testcase name -> its properties, from a junitxml file."""
    cases = ET.parse(xml).getroot().iter("testcase")
    return {
        c.get("name", ""): {p.get("name", ""): p.get("value", "") for p in c.iter("property")} for c in cases
    }


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["alone", "xdist"])
def test_each_candidate_carries_its_verdict_as_junitxml_properties(pytester, project, repo, xdist):
    pytester.makeconftest(CONFTEST.format(tests=str(repo / "tests")))
    args = ["--autofl-iterations=3", "--autofl-proposer=list", "--autofl-env=scripted", "--junitxml=out.xml"]
    result = pytester.runpytest(*args, *xdist)
    assert result.ret == 0, result.stdout.str()[-3000:]
    rows = {r.candidate_id: r for r in ledger.read_rows(project / "results.tsv")}
    cases = _properties(project / "out.xml")
    assert len(cases) == 3
    for properties in cases.values():
        assert list(properties) == PROPERTIES  # nothing else (the xdist row transport stays out)
        row = rows[properties["autofl_candidate"]]
        assert properties["autofl_verdict"] == row.status and properties["autofl_reason"] == row.reason
        assert properties["autofl_score"] == f"{row.score:.4f}"
        assert properties["autofl_seeds"] == str(len(row.seed_scores))
    verdicts = sorted(p["autofl_verdict"] for p in cases.values())
    assert verdicts == ["discard", "discard", "keep"]
    assert {p["autofl_interval"] for p in cases.values() if p["autofl_verdict"] == "discard"} != {"-"}


def test_a_candidate_file_carries_its_verdict_too(pytester, project, repo):
    pytester.makeconftest(CONFTEST.format(tests=str(repo / "tests")))
    (project / "candidates").mkdir()
    (project / "candidates" / "median.yaml").write_text("knobs: {aggregator: median}\n")
    (project / "candidates" / "typo.yaml").write_text("knobs: {lr: 5.0}\n")
    result = pytester.runpytest("candidates", "--autofl-env=scripted", "--junitxml=out.xml")
    assert result.ret == 1  # the typo is rejected
    cases = _properties(project / "out.xml")
    assert cases["median"]["autofl_verdict"] == "discard" and cases["median"]["autofl_candidate"].startswith(
        "median"
    )
    assert cases["typo"]["autofl_verdict"] == "invalid" and "out of bounds" in cases["typo"]["autofl_reason"]


def test_a_failed_check_is_one_github_annotation_per_violation_on_its_file_and_line(
    pytester, project, monkeypatch
):
    (project / "candidates").mkdir()
    (project / "candidates" / "typo.yaml").write_text("knobs: {lr: 5.0, momentun: 0.5}\n")
    (project / "results.tsv").write_text("\t".join(ledger.COLUMNS) + "\nbroken\trow\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = pytester.runpytest("--autofl-check")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "::error file=candidates/typo.yaml,title=autofl check%3A candidate::candidate: *momentun*",
            "::error file=results.tsv,line=2,title=autofl check%3A ledger::ledger: *results.tsv:2: *",
        ]
    )
    assert "autofl check FAILED" not in result.stdout.str()


def test_annotations_escape_what_github_would_read_as_syntax(tmp_path):
    problem = "schema: 100% broken,\nsee: the docs"
    assert github_annotation(problem, tmp_path) == (
        "::error title=autofl check%3A schema::schema: 100%25 broken,%0Asee: the docs"
    )
    (tmp_path / "a,b.yaml").write_text("")
    located = github_annotation(f"candidate: {tmp_path / 'a,b.yaml'}: bad", tmp_path)
    assert located.startswith("::error file=a%2Cb.yaml,title=")
