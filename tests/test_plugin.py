"""Plugin behaviour through pytester: options, modes and clear errors. Nothing here trains a model."""

from __future__ import annotations

import json

import pytest

from pytest_autofl.ledger import store as ledger
from pytest_autofl.ledger import writer


def test_help_lists_the_option_group(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*pytest-autofl*",
            "*--autofl-iterations=ITERATIONS*",
            "*--autofl-benchmark=BENCHMARK*",
            "*--autofl-ledger=LEDGER*",
            "*--autofl-check*",
            "*autofl_iterations*",
            "*autofl_surface_dir*",
        ]
    )


def test_check_is_green_on_the_shipped_project(pytester, project):
    result = pytester.runpytest("--autofl-check")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "autofl check ok: contract digits-smoke: valid, pinned*",
            "autofl check ok: surface *: Client API and strategy contract rules hold",
            "autofl check ok: sandbox: bubblewrap works here; candidate code runs sandboxed",
            "autofl check: contract, schema, surface and ledger are valid",
        ]
    )


def test_check_is_red_on_a_tampered_contract(pytester, project):
    path = project / "benchmarks" / "digits" / "contract.json"
    raw = json.loads(path.read_text())
    raw["min_delta"] = 0.0  # still a valid contract, just not the pinned one
    path.write_text(json.dumps(raw))
    result = pytester.runpytest("--autofl-check", "--autofl-benchmark", "digits")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "autofl check FAILED: contract: contract 'digits' was changed*",
            "autofl check: 1 violation(s); nothing was trained",
        ]
    )


def test_check_is_red_on_a_surface_that_breaks_the_client_api(pytester, project):
    script = project / "surfaces" / "client_train.py"
    script.write_text(script.read_text().replace("strict=True", "strict=False"))
    result = pytester.runpytest("--autofl-check")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["autofl check FAILED: surface: *client_train.py:*: AF105 *strict=True*"])


def test_check_is_red_on_a_malformed_ledger(pytester, project):
    (project / "results.tsv").write_text("\t".join(ledger.COLUMNS) + "\nbroken\trow\n")
    result = pytester.runpytest("--autofl-check")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["autofl check FAILED: ledger: *results.tsv:2: malformed row: 2 fields*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--autofl-iterations=many"], "*--autofl-iterations must be an integer, got 'many'*"),
        (["--autofl-iterations=-1"], "*--autofl-iterations must be >= 0*"),
        (
            ["--autofl-iterations=1", "--autofl-benchmark=cifar"],
            "*unknown benchmark 'cifar'*known benchmarks:*",
        ),
        (
            ["--autofl-rerun=abc", "-n", "2"],
            "*--autofl-rerun runs one candidate; run it without pytest-xdist*",
        ),
        (["--autofl-rerun=nope"], "*no ledger row with candidate_id or row_id 'nope'*"),
        (["--autofl-rerun=x", "--autofl-iterations=2"], "*do not combine it with --autofl-iterations*"),
        (["--autofl-iterations=1", "--autofl-parallel=0"], "*--autofl-parallel must be >= 1, got 0*"),
        (
            ["--autofl-iterations=1", "--autofl-parallel=lots"],
            "*--autofl-parallel must be an integer or 'auto', got 'lots'*",
        ),
        (
            ["--autofl-iterations=1", "--autofl-env=cloud"],
            "*unknown environment 'cloud'; choose one of poc, prod, sim*",
        ),
        (["--autofl-iterations=1", "--autofl-env=prod"], "*--autofl-env prod needs --autofl-startup-kit*"),
        (
            ["--autofl-iterations=1", "--autofl-preload=maybe"],
            "*--autofl-preload must be on or off, got 'maybe'*",
        ),
        (
            ["--autofl-iterations=1", "--autofl-proposer=optuna", "--autofl-sampler=annealing"],
            "*--autofl-sampler must be one of tpe, cmaes, gp, random, qmc, got 'annealing'*",
        ),
        (
            ["--autofl-iterations=1", "--autofl-proposer-seed=-3"],
            "*--autofl-proposer-seed must be >= 0, got -3*",
        ),
        (
            ["--autofl-iterations=1", "--autofl-env=poc", "-n", "2"],
            "*--autofl-env poc runs without pytest-xdist (-n)*",
        ),
    ],
)
def test_bad_usage_is_a_clear_error(pytester, project, args, message):
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_search_refuses_an_unpinned_contract(pytester, project):
    (project / "benchmarks" / "digits-smoke" / "contract.sha256").write_text("0" * 64 + "\n")
    result = pytester.runpytest("--autofl-iterations=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*contract 'digits-smoke' was changed*"])


def test_a_malformed_ledger_stops_the_search_before_anything_runs(pytester, project):
    broken = "\t".join(ledger.COLUMNS) + "\nbroken\trow\n"
    (project / "results.tsv").write_text(broken)
    result = pytester.runpytest("--autofl-iterations=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*results.tsv:2: malformed row*"])
    assert (project / "results.tsv").read_text() == broken


def test_a_normal_run_deselects_the_candidate_test(pytester, project):
    pytester.makepyfile(test_other="def test_ok():\n    pass\n")
    result = pytester.runpytest("test_other.py", "benchmarks")
    result.assert_outcomes(passed=1, deselected=1)


def test_a_search_runs_only_candidates_and_needs_the_candidate_test(pytester, project):
    pytester.makepyfile(test_other="def test_ok():\n    pass\n")
    result = pytester.runpytest(
        "--autofl-iterations=3", "--collect-only", "-q", "test_other.py", "benchmarks"
    )
    result.stdout.fnmatch_lines(
        [
            "benchmarks/test_autofl.py::test_candidate[[]candidate-01[]]",
            "benchmarks/test_autofl.py::test_candidate[[]candidate-03[]]",
            "3/4 tests collected (1 deselected)*",
        ]
    )
    result = pytester.runpytest("--autofl-iterations=3", "test_other.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no collected test uses the autofl_trial fixture*"])


def test_the_contract_fixture_is_available_to_any_test(pytester, project):
    pytester.makepyfile(
        test_c="def test_c(autofl_contract, autofl_split):\n"
        "    assert autofl_contract.name == 'digits-smoke'\n"
        "    assert len(autofl_contract.sha) == 64 and len(autofl_split.sha) == 64\n"
        "    assert len(autofl_split.clients) == autofl_contract.num_clients\n"
    )
    pytester.runpytest("test_c.py").assert_outcomes(passed=1)


def test_a_malformed_candidate_file_is_rejected_recorded_and_named_by_the_check(pytester, project):
    (project / "candidates").mkdir()
    (project / "candidates" / "typo.yaml").write_text("knobs: {lr: 5.0, momentun: 0.5}\n")
    result = pytester.runpytest("--autofl-check")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "autofl check FAILED: candidate: *typo.yaml: unknown knob 'momentun'; knob 'lr' = 5.0 is out of bounds*"
        ]
    )
    result = pytester.runpytest("candidates/typo.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rejected (recorded as invalid): *typo.yaml: unknown knob 'momentun'*"])
    (row,) = ledger.read_fields(project / "results.tsv")
    assert (row["status"], row["target"]) == ("invalid", "rejected")
    assert row["reason"].startswith("rejected before running: ") and "momentun" in row["reason"]


def test_candidate_files_are_not_part_of_a_normal_run(pytester, project):
    (project / "candidates").mkdir()
    (project / "candidates" / "ok.yaml").write_text("knobs: {lr: 0.1}\n")
    result = pytester.runpytest("--collect-only", "-q", "candidates")
    result.stdout.fnmatch_lines(["candidates/ok.yaml::ok"])
    pytester.runpytest().assert_outcomes(deselected=1)  # testpaths hold no candidate files


def test_check_names_a_tampered_ledger_row(pytester, project):
    from pytest_autofl.ledger.writer import Seal

    path = project / "results.tsv"
    seal = Seal.of(project / ".autofl", path)
    for i in range(3):
        fields = {c: "" for c in ledger.COLUMNS}
        fields.update(
            status="keep", score=f"0.{i}00000", candidate_id=f"c{i}", row_id=f"r{i}", runtime_seconds="1.0"
        )
        writer.append_fields(path, fields, seal)
    assert "chain verified" in pytester.runpytest("--autofl-check").stdout.str()
    path.write_text(path.read_text().replace("0.100000", "0.900000"))
    result = pytester.runpytest("--autofl-check")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["autofl check FAILED: ledger: *results.tsv:3: its chain does not verify*"])


def test_check_names_a_tampered_shard(pytester, project):
    import numpy as np

    from pytest_autofl.core.contract import load_contract
    from pytest_autofl.data.split import write_shards

    shards = write_shards(load_contract(project / "benchmarks", "digits-smoke"), project / ".autofl" / "data")
    assert pytester.runpytest("--autofl-check").ret == 0
    with np.load(shards.directory / "site-2.npz") as shard:
        arrays = {k: shard[k] for k in shard.files}
    np.savez(shards.directory / "site-2.npz", **{**arrays, "x": arrays["x"] * 0})
    result = pytester.runpytest("--autofl-check")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["autofl check FAILED: shards: *site-2.npz: its contents changed*"])
