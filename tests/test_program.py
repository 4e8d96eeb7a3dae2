"""program.md: the front matter caps and narrows the campaign (never widens it); the prose is the model's."""

from __future__ import annotations

import random

import pytest

from pytest_autofl.__main__ import main
from pytest_autofl.control.program import ProgramError, parse
from pytest_autofl.core.schema import load_schema

PROGRAM = """---
benchmark: digits-skew
proposer: builtin
max_iterations: 5
max_llm_calls: 7
plateau: {after: 3}
knobs:
  aggregator: {choices: [fedavg, fedavgm]}
  server_momentum: {low: 0.0, high: 0.5}
  lr:
files: [strategies.py]
---
# Intent
Does server momentum help under label skew?
"""


@pytest.fixture
def schema(repo):
    return load_schema(repo / "surfaces")


def test_front_matter_and_prose(schema):
    program = parse(PROGRAM)
    assert (program.benchmark, program.proposer, program.max_iterations, program.max_llm_calls) == (
        "digits-skew",
        "builtin",
        5,
        7,
    )
    assert program.plateau_after == 3 and program.files == ("strategies.py",)
    assert program.prose == "# Intent\nDoes server momentum help under label skew?\n"
    assert parse("just prose\n").prose == "just prose\n" and parse("just prose\n").knobs is None


def test_narrowing_fixes_unlisted_knobs_and_keeps_the_defaults(schema):
    narrow = parse(PROGRAM).narrow(schema)
    assert narrow.free_knobs() == ["lr", "aggregator", "server_momentum"]
    assert narrow.knobs["aggregator"].choices == ("fedavg", "fedavgm")
    assert (narrow.knobs["server_momentum"].low, narrow.knobs["server_momentum"].high) == (0.0, 0.5)
    assert narrow.knobs["lr"] == schema.knobs["lr"]  # listed without bounds: the schema's whole range
    assert narrow.files == ("strategies.py",) and narrow.defaults() == schema.defaults()
    rng = random.Random(0)
    for _ in range(50):
        sample = narrow.sample(rng)
        assert sample["arch"] == "mlp" and sample["fedprox_mu"] == 0.0 and sample["aggregator"] != "median"
    assert narrow.problems({"aggregator": "scaffold"}) and narrow.problems({"momentum": 0.5})


@pytest.mark.parametrize(
    "front, named",
    [
        ("knobs: {aggregator: {choices: [fedavg, fedyogi]}}", "knobs.aggregator.choices: ['fedyogi'] widen"),
        ("knobs: {lr: {low: 0.0001}}", "knobs.lr: [0.0001, 0.5] widens the schema's bounds [0.001, 0.5]"),
        ("knobs: {lr: {low: 0.1}}", "knobs.lr: [0.1, 0.5] must keep the default 0.05"),
        (
            "knobs: {aggregator: {choices: [fedavgm]}}",
            "knobs.aggregator.choices: must keep the default 'fedavg'",
        ),
        ("knobs: {rounds: {}}", "knobs ['rounds'] are not knobs of the mutation schema"),
        ("knobs: {lr: {choices: [0.1]}}", "knobs.lr.choices: only a choice knob"),
        ("files: [client_train.py, evaluate.py]", "files ['evaluate.py'] are not surface files"),
    ],
)
def test_a_widening_is_an_error_naming_the_field(schema, front, named):
    with pytest.raises(ProgramError, match="program.md: " + named.replace("[", r"\[").replace("(", r"\(")):
        parse(f"---\n{front}\n---\nprose\n").narrow(schema)


@pytest.mark.parametrize(
    "front, named",
    [
        ("budget: 3", "unknown front-matter key(s) ['budget']"),
        ("max_iterations: 0", "max_iterations must be an integer >= 1, got 0"),
        ("max_llm_tokens: lots", "max_llm_tokens must be an integer >= 1"),
        ("plateau: 3", "plateau must be a mapping with 'after'"),
        ("plateau: {after: -1}", "after must be an integer >= 1"),
        ("benchmark: [a]", "benchmark must be a name"),
        ("knobs: [lr]", "knobs must map knob names"),
        ("files: strategies.py", "files must be a list"),
        ("a: [", "the front matter is not YAML"),
        ("- 1", "the front matter must be a mapping"),
    ],
)
def test_a_malformed_front_matter_is_an_error_naming_the_field(front, named):
    with pytest.raises(ProgramError) as caught:
        parse(f"---\n{front}\n---\nprose\n")
    assert named in str(caught.value)


def test_the_plugin_applies_caps_and_check_validates(project, pytester):
    (project / "program.md").write_text(PROGRAM.replace("digits-skew", "digits-smoke"))
    check = pytester.runpytest("--autofl-check", "-p", "no:cacheprovider")
    check.stdout.fnmatch_lines(
        ["*ok: program *program.md: knobs free *'lr', 'aggregator', 'server_momentum'*"]
    )
    check.stdout.fnmatch_lines(["*ok: cards: none at *skills/literature/cards; a plateau is reported*"])
    collected = pytester.runpytest("--collect-only", "--autofl-iterations=9", "-p", "no:cacheprovider")
    assert collected.stdout.str().count("test_candidate[candidate-") == 5  # max_iterations caps the session
    collected.stdout.fnmatch_lines(["*autofl: program *program.md: at most 5 candidates per session*"])
    (project / "program.md").write_text("---\nknobs: {lr: {low: 0.0001}}\n---\n")
    check = pytester.runpytest("--autofl-check", "-p", "no:cacheprovider")
    assert check.ret == 1
    check.stdout.fnmatch_lines(["*FAILED: program: *program.md: knobs.lr: [[]0.0001, 0.5] widens*"])
    (project / "program.md").write_text("---\nbenchmark: digits\n---\n")
    other = pytester.runpytest("--autofl-check", "-p", "no:cacheprovider")
    assert other.ret != 0
    other.stderr.fnmatch_lines(
        ["*the program is about benchmark 'digits', but 'digits-smoke' was asked for*"]
    )
    (project / "program.md").write_text("---\nmax_iterations: zero\n---\n")
    bad = pytester.runpytest("--autofl-iterations=3", "-p", "no:cacheprovider")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*program.md: max_iterations must be an integer >= 1, got 'zero'*"])


def test_init_writes_a_starter_that_parses_and_refuses_to_overwrite(repo, tmp_path, capsys):
    out = tmp_path / "program.md"
    common = ["--benchmarks-dir", str(repo / "benchmarks"), "--surface-dir", str(repo / "surfaces")]
    assert main(["init", "--benchmark", "digits-skew", "--out", str(out), *common]) == 0
    program = parse(out.read_text())
    assert program.benchmark == "digits-skew" and program.knobs is None and program.plateau_after == 8
    assert "Dirichlet" in program.prose or "skew" in program.prose  # the task profile is in the prose
    assert main(["init", "--out", str(out), *common]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["init", "--benchmark", "nope", "--out", str(tmp_path / "p.md"), *common]) == 2
