"""The bad-input matrix, generated: every option read when pytest starts, with values of the wrong type or out of
range, on the command line and as an ini key (one usage error naming the flag, or the ini key and its file, and
the value); every contract field missing, of the wrong type or a boolean (one error naming the file and the
field); any field of the mutation schema or of a candidate file set to any YAML value; damaged ledgers and
unwritable workdirs. Nothing is written in any case."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.contract import load_contract
from pytest_autofl.core.contract_fields import OPTIONAL, REQUIRED
from pytest_autofl.core.errors import ContractError, LedgerError, SchemaError
from pytest_autofl.core.schema import load_schema
from pytest_autofl.ledger import store, writer
from pytest_autofl.plugin.options import _OPTIONS
from pytest_autofl.proposers.candidate_file import load_candidate_file

# option -> (its kind, the smallest value it takes): the cases are generated from the kind
INTEGERS = {
    "autofl_iterations": 0,
    "autofl_parallel": 1,
    "autofl_proposer_seed": 0,
    "autofl_llm_retries": 0,
    "autofl_llm_max_calls": 1,
    "autofl_llm_max_tokens": 1,
}
SWITCHES = ("autofl_preload", "autofl_screen")
NOT_A_NUMBER = ("lots", "1.5", "", "0x10", "ten")


def _cases() -> list[tuple[str, str, str]]:
    """(ini key, bad value, what the message must say about it)."""
    cases = []
    for ini, minimum in INTEGERS.items():
        cases += [(ini, bad, "must be an integer") for bad in NOT_A_NUMBER]
        cases.append((ini, str(minimum - 1), f"must be >= {minimum}, got {minimum - 1}"))
    cases += [(ini, bad, "must be on or off") for ini in SWITCHES for bad in ("maybe", "yes", "1")]
    cases += [
        ("autofl_llm_timeout", bad, "must be a positive number of seconds") for bad in ("0", "-5", "soon")
    ]
    cases += [("autofl_sampler", "annealing", "must be one of tpe, cmaes, gp, random, qmc")]
    return cases


def test_the_matrix_covers_every_typed_option():
    flags = {ini for _, ini, _, _ in _OPTIONS}
    typed = {ini for ini, _, _ in _cases()}
    assert typed <= flags
    # the rest take names (resolved when a search starts) or paths
    assert flags - typed == {
        "autofl_benchmark",
        "autofl_workdir",
        "autofl_ledger",
        "autofl_env",
        "autofl_startup_kit",
        "autofl_proposer",
        "autofl_sandbox",
        "autofl_llm_model",
        "autofl_program",
        "autofl_report",
    }


@pytest.mark.parametrize(("ini", "bad", "said"), _cases())
@pytest.mark.parametrize("form", ["flag", "ini"])
def test_a_bad_value_is_one_clear_usage_error_and_nothing_is_written(pytester, ini, bad, said, form):
    flag = "--" + ini.replace("_", "-")
    if form == "flag":
        args, named = [f"{flag}={bad}"], flag
    else:
        pytester.makeini(f"[pytest]\n{ini} = {bad}\n")
        args, named = [], f"{ini} (in tox.ini)"
    with pytest.raises(pytest.UsageError) as raised:
        pytester.parseconfigure(*args)
    message = str(raised.value)
    assert message.startswith(named) and said in message and "\n" not in message, message
    assert repr(bad.strip()) in message or bad.strip() in message
    assert sorted(p.name for p in pytester.path.iterdir()) == (["tox.ini"] if form == "ini" else [])


@settings(max_examples=40, deadline=None)
@given(
    st.integers(max_value=-1)
    | st.text(alphabet="abc.-+ 9", min_size=1, max_size=6).filter(
        lambda t: not t.strip().lstrip("+").isdigit()
    )
)
def test_any_non_count_is_refused_for_parallel(bad):
    """Property: --autofl-parallel takes a positive integer or 'auto' and nothing else (parsed without pytest)."""
    from pytest_autofl.plugin.planned import count

    class Config:  # the two things count() reads
        inicfg: dict = {}
        inipath = None

        @staticmethod
        def getoption(name):
            return str(bad)

    if str(bad).strip() == "auto":
        return
    with pytest.raises(pytest.UsageError, match="--autofl-parallel must be"):
        count(Config(), "autofl_parallel", 1, auto=4)  # type: ignore[arg-type]


def _field_cases() -> list[tuple[str, str, object, str]]:
    """(how, dotted field, the value put there, what the message must say): every field of the contract missing
    (the required ones), of the wrong type, a boolean where a number goes."""
    cases: list[tuple[str, str, object, str]] = []
    for dotted in REQUIRED:
        cases.append(("missing", dotted, None, f"missing field '{dotted}'"))
    for dotted in [*REQUIRED, *OPTIONAL]:
        cases.append(("wrong type", dotted, {"nested": 1}, f"field '{dotted}' = {{'nested': 1}}"))
        cases.append(("boolean", dotted, True, f"field '{dotted}' = True"))
    return cases


@pytest.mark.parametrize(("how", "dotted", "bad", "said"), _field_cases())
def test_a_broken_contract_field_is_named_and_nothing_is_written(repo, tmp_path, how, dotted, bad, said):
    shutil.copytree(repo / "benchmarks" / "digits-skew", tmp_path / "b" / "digits-skew")
    path = tmp_path / "b" / "digits-skew" / "contract.json"
    raw = json.loads(path.read_text())
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    if how == "missing":
        node.pop(leaf)
    else:
        node[leaf] = bad
    path.write_text(json.dumps(raw))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ContractError) as raised:
        load_contract(tmp_path / "b", "digits-skew")
    message = str(raised.value)
    assert str(path) in message and said in message and "\n" not in message, message
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


_YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["knobs", "cites", "description", "files", "patch", "knob", "notes"]),
        _YAML_VALUES
        | st.dictionaries(st.sampled_from(["lr", "aggregator", "fedprox_mu", "x"]), _YAML_VALUES),
        max_size=4,
    )
)
def test_any_candidate_file_loads_or_is_refused_naming_the_file(repo, tmp_path, data):
    """Property: whatever an agent writes into a candidate file's fields, loading it gives a candidate or one
    SchemaError that names the file, never another exception."""
    path = tmp_path / "cand.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_candidate_file(path, CandidateFactory(load_schema(repo / "surfaces")), repo / "surfaces")
    except SchemaError as exc:
        assert str(exc).startswith(str(path)), exc


_KNOB_FIELDS = ["type", "default", "low", "high", "choices", "log", "applies", "doc", "step"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["knobs", "files", "control", "version", "lr", "aggregator", "server_momentum"]),
            st.sampled_from([None, *_KNOB_FIELDS]),
            st.none() | _YAML_VALUES | st.sampled_from([float("inf"), float("-inf"), float("nan")]),
        ),
        min_size=1,
        max_size=3,
    )
)
@example(
    edits=[("aggregator", "choices", [["fedavg"], ["fedavgm"]])]
)  # lists as choices, which applies names
def test_any_broken_schema_loads_into_a_usable_schema_or_is_refused_naming_the_file(repo, tmp_path, edits):
    """Property: the bundled schema with any field set to any YAML value (or removed) loads into a schema whose
    defaults and samples pass its own checks, or is one SchemaError line naming the file, never another
    exception."""
    raw = yaml.safe_load((repo / "surfaces" / "mutation_schema.yaml").read_text())
    for where, field, value in edits:
        if where in ("knobs", "files", "control", "version"):
            target, key = raw, where
        else:
            target, key = raw["knobs"] if isinstance(raw.get("knobs"), dict) else {}, where
            if field is not None and isinstance(target.get(key), dict):
                target, key = target[key], field
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    for name in ("client_train.py", "model.py", "strategies.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "mutation_schema.yaml").write_text(yaml.safe_dump(raw))
    try:
        schema = load_schema(tmp_path)
    except SchemaError as exc:
        message = str(exc)
        assert message.startswith(str(tmp_path / "mutation_schema.yaml")) and "\n" not in message, message
        return
    assert schema.problems(schema.defaults()) == []
    for seed in range(3):
        sampled = schema.sample(random.Random(seed))
        assert schema.problems(sampled) == [], sampled


def _ledger(path) -> bytes:
    for i in range(5):
        writer.append_fields(
            path, {"status": "discard", "score": "0.5", "row_id": f"r{i}", "candidate_id": f"c{i}"}
        )
    return path.read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    how=st.sampled_from(["foreign header", "extra field", "missing field", "cut short"]),
    line=st.integers(min_value=2, max_value=5),  # a row in the middle (the last one, cut, is a torn tail)
    at=st.integers(min_value=1, max_value=200),
)
def test_a_damaged_ledger_is_named_with_its_line_and_never_written(tmp_path_factory, how, line, at):
    path = tmp_path_factory.mktemp("ledger") / "results.tsv"
    lines = _ledger(path).decode().split("\n")
    if how == "foreign header":
        lines[0], line = "run\tscore\tnotes", 1
    elif how == "extra field":
        lines[line - 1] += "\textra"
    elif how == "missing field":
        lines[line - 1] = lines[line - 1].rsplit("\t", 1)[0]
    else:
        lines[line - 1] = lines[line - 1][: at % len(lines[line - 1])]
    path.write_text("\n".join(lines))
    damaged = path.read_bytes()
    for attempt in (
        lambda: store.read_rows(path),
        lambda: writer.append_fields(path, {"status": "keep", "row_id": "new"}),
    ):
        with pytest.raises(LedgerError) as raised:
            attempt()
        assert f"{path}:{line}:" in str(raised.value) and "\n" not in str(raised.value)
    assert path.read_bytes() == damaged
    assert len(store.validate(path)) == 1


@pytest.mark.parametrize(
    ("option", "value"), [("--autofl-workdir", "blocked"), ("--autofl-ledger", "blocked/results.tsv")]
)
def test_a_workdir_or_ledger_that_cannot_be_written_is_one_usage_error(pytester, project, option, value):
    (project / "blocked").write_text("a file where a directory should be")

    def listing() -> list[str]:  # pytester keeps its own runpytest-N captures here
        return sorted(p.name for p in project.iterdir() if not p.name.startswith(("runpytest", "std")))

    before = listing()
    result = pytester.runpytest("--autofl-iterations=1", f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: autofl: {option}: */blocked cannot be written: *"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert listing() == before
