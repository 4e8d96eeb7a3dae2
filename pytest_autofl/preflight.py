"""The pre-flight check behind ``pytest --autofl-check``: contract, schema, surface rules, candidate files and
ledger validated without training anything."""

from __future__ import annotations

from pathlib import Path

from pytest_autofl.core.candidate import CandidateFactory
from pytest_autofl.core.contract import check_pin, load_contract
from pytest_autofl.core.errors import AutoFLError
from pytest_autofl.core.schema import load_schema
from pytest_autofl.core.surface_rules import check_surface
from pytest_autofl.data.split import contract_split
from pytest_autofl.ledger import store as ledger
from pytest_autofl.proposers.candidate_file import load_candidate_file


def run_checks(
    benchmarks_dir: Path,
    benchmark: str,
    surface_dir: Path,
    ledger_path: Path,
    candidates_dir: Path | None = None,
) -> tuple[list[str], list[str]]:
    """(passed, problems): one human line per check passed and per problem found."""
    passed: list[str] = []
    problems: list[str] = []
    try:
        contract = load_contract(benchmarks_dir, benchmark)
        check_pin(contract)
        split = contract_split(contract)
        passed.append(
            f"contract {benchmark}: valid, pinned (contract_sha {contract.sha[:12]}), "
            f"split_sha {split.sha[:12]}, profile present"
        )
    except (AutoFLError, ValueError) as exc:
        problems.append(f"contract: {exc}")
    try:
        schema = load_schema(surface_dir)
        passed.append(
            f"schema {surface_dir}: {len(schema.knobs)} knobs, patchable files {list(schema.files)}"
        )
        files = sorted(candidates_dir.glob("*.y*ml")) if candidates_dir and candidates_dir.is_dir() else []
        bad = 0
        factory = CandidateFactory(schema)
        for path in files:
            try:
                load_candidate_file(path, factory, surface_dir)
            except AutoFLError as exc:
                bad += 1
                problems.append(f"candidate: {exc}")
        if files and not bad:
            passed.append(f"candidates {candidates_dir}: {len(files)} file(s) valid")
    except AutoFLError as exc:
        problems.append(f"schema: {exc}")
    violations = check_surface(surface_dir)
    if violations:
        problems.extend(f"surface: {v}" for v in violations)
    else:
        passed.append(f"surface {surface_dir}: Client API and strategy contract rules hold")
    ledger_problems = ledger.validate(ledger_path)
    if ledger_problems:
        problems.extend(f"ledger: {p}" for p in ledger_problems)
    else:
        rows = len(ledger.read_fields(ledger_path))
        passed.append(
            f"ledger {ledger_path}: well-formed ({rows} rows)"
            if ledger_path.exists()
            else f"ledger {ledger_path}: not created yet"
        )
    return passed, problems
