"""The pre-flight check behind ``pytest --autofl-check``: contract, schema, surface rules, candidate files and
ledger validated without training anything."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pytest_autofl.control.program import NO_PROGRAM, Program
from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.contract import check_pin, load_contract
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.schema import load_schema
from pytest_autofl.core.surface_rules import check_surface
from pytest_autofl.data.split import planned_shards
from pytest_autofl.ledger import store as ledger
from pytest_autofl.ledger.chain import harness_key, head_path
from pytest_autofl.ledger.writer import Seal
from pytest_autofl.literature.cards import card_problems, load_cards
from pytest_autofl.proposers.candidate_file import load_candidate_file
from pytest_autofl.run.sandbox import probe as sandbox_probe


def run_checks(
    benchmarks_dir: Path,
    benchmark: str,
    surface_dir: Path,
    ledger_path: Path,
    candidates_dir: Path | None = None,
    workdir: Path = Path(".autofl"),
    program: Program = NO_PROGRAM,
    cards_dir: Path | None = None,
) -> tuple[list[str], list[str]]:
    """(passed, problems): one human line per check passed and per problem found."""
    passed: list[str] = []
    problems: list[str] = []
    try:
        contract = load_contract(benchmarks_dir, benchmark)
        surface_dir = contract.surface_dir(benchmarks_dir.parent, surface_dir)
        check_pin(contract)
        shards = planned_shards(contract, workdir / "data")
        passed.append(
            f"contract {benchmark}: valid, pinned (contract_sha {contract.sha[:12]}), "
            f"split_sha {shards.split.sha[:12]}, profile present"
        )
        if shards.directory.is_dir():  # written by an earlier search: every shard must match the data set
            problems.extend(f"shards: {p}" for p in shards.problems())
    except (AutoFLError, ValueError) as exc:
        problems.append(f"contract: {exc}")
    schema_passed, schema_problems = _check_schema(surface_dir, candidates_dir, program, cards_dir)
    passed += schema_passed
    problems += schema_problems
    violations = check_surface(surface_dir)
    if violations:
        problems.extend(f"surface: {v}" for v in violations)
    else:
        passed.append(f"surface {surface_dir}: Client API and strategy contract rules hold")
    why = sandbox_probe()
    passed.append(
        "sandbox: bubblewrap works here; candidate code runs sandboxed"
        if why is None
        else f"sandbox: none can be made here ({why}); code changes will be refused unless --autofl-sandbox off"
    )
    ledger_passed, ledger_problems = _check_ledger(ledger_path, workdir)
    passed += ledger_passed
    problems.extend(f"ledger: {p}" for p in ledger_problems)
    return passed, problems


def _check_schema(
    surface_dir: Path, candidates_dir: Path | None, program: Program, cards_dir: Path | None
) -> tuple[list[str], list[str]]:
    """The schema, the program's narrowing of it, the candidate files and the literature cards."""
    passed: list[str] = []
    problems: list[str] = []
    try:
        full = load_schema(surface_dir)
        passed.append(f"schema {surface_dir}: {len(full.knobs)} knobs, patchable files {list(full.files)}")
    except AutoFLError as exc:
        return passed, [f"schema: {exc}"]
    try:
        schema = program.narrow(full)
        if program.path is not None:
            passed.append(
                f"program {program.path}: knobs free {schema.free_knobs()}, files {list(schema.files)}"
            )
    except AutoFLError as exc:
        problems.append(f"program: {exc}")
        schema = full
    factory = CandidateFactory(schema)
    files = sorted(candidates_dir.glob("*.y*ml")) if candidates_dir and candidates_dir.is_dir() else []
    bad = 0
    for path in files:
        try:
            load_candidate_file(path, factory, surface_dir)
        except AutoFLError as exc:
            bad += 1
            problems.append(f"candidate: {exc}")
    if files and not bad:
        passed.append(f"candidates {candidates_dir}: {len(files)} file(s) valid")
    if cards_dir is not None and not cards_dir.is_dir():
        passed.append(f"cards: none at {cards_dir}; a plateau is reported, no literature review runs")
    elif cards_dir is not None:
        try:
            cards = load_cards(cards_dir)
            surface = {name: (surface_dir / name).read_text() for name in full.files}
            found = card_problems(cards, CandidateFactory(full), surface_dir, surface)
        except AutoFLError as exc:
            found = [str(exc)]
        problems += [f"card: {p}" for p in found]
        if not found:
            passed.append(
                f"cards {cards_dir}: {len(cards)} cited methods, every run applies and passes the rules"
            )
    return passed, problems


def _check_ledger(path: Path, workdir: Path) -> tuple[list[str], list[str]]:
    """Well-formed rows, and a chain that verifies with the harness key (when this workdir has one)."""
    if not path.exists():
        return [f"ledger {path}: not created yet"], []
    problems = ledger.validate(path)
    if problems:
        return [], problems
    rows = len(ledger.read_fields(path))
    key = harness_key(workdir, create=False)
    if key is None:
        return [
            f"ledger {path}: well-formed ({rows} rows); chain not verified: no harness key in {workdir}"
        ], []
    problems = Seal(key, head_path(workdir, path)).verify(path)
    return ([f"ledger {path}: well-formed ({rows} rows), chain verified"] if not problems else []), problems


_LOCATED = re.compile(r"^(?P<file>[^\s:]+)(?::(?P<line>\d+))?: ")


def github_annotation(problem: str, root: Path) -> str:
    """A problem as a GitHub Actions error annotation (``::error file=..,line=..::``) on the file and line it
    names (relative to ``root``, the checkout), so a failed check shows up on the file in the pull request."""
    category, _, message = problem.partition(": ")
    where = [("title", f"autofl check: {category}")]
    located = _LOCATED.match(message)
    if located and Path(located["file"]).is_file():
        lines = [("line", located["line"])] if located["line"] else []
        where = [("file", os.path.relpath(Path(located["file"]).resolve(), root.resolve())), *lines, *where]
    properties = ",".join(f"{key}={_escaped(value, ':,')}" for key, value in where)
    return f"::error {properties}::{_escaped(problem)}"


def _escaped(text: str, also: str = "") -> str:
    """GitHub's workflow-command escaping: %, CR and LF always, ``also`` in property values."""
    codes = {"%": "%25", "\r": "%0D", "\n": "%0A", ":": "%3A", ",": "%2C"}
    return "".join(codes[c] if c in "%\r\n" + also else c for c in text)
