"""``python -m pytest_autofl``: the loop's tools that run nothing.

- ``report results.tsv``: report.md, report.json and progress.png from a ledger;
- ``init``: a commented starter ``program.md`` for a benchmark;
- ``plateau results.tsv``: the plateau watchdog's ``key=value`` lines;
- ``next results.tsv [--json]``: what the loop would do next and why (for an outside coding agent);
- ``new NAME --dataset ...``: a new benchmark from your data (and your own Client API script).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_autofl.core.errors import AutoFLError

if TYPE_CHECKING:
    from pytest_autofl.control.program import Program
    from pytest_autofl.ledger.row import Row

Command = Callable[[argparse.Namespace], int]


def _report(args: argparse.Namespace) -> int:
    from pytest_autofl.ledger.analysis import load_ledger, one_contract
    from pytest_autofl.report.facts import companions, scoring_for, write_report

    rows = one_contract(load_ledger(args.ledger), args.benchmark, args.contract)
    benchmark = str(rows["benchmark"].iloc[-1])
    scoring = scoring_for(args.benchmarks_dir, benchmark)
    facts = write_report(args.ledger, args.out, scoring, benchmark=args.benchmark, contract_sha=args.contract)
    if not scoring.from_contract:
        print(
            f"autofl report: no contract {benchmark!r} under {args.benchmarks_dir}: "
            "the score is assumed higher-is-better",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(facts))
    else:
        print(f"autofl report: {args.out / 'report.md'}, {companions(facts)} ({facts['rows']} rows)")
    return 0


def _init(args: argparse.Namespace) -> int:
    from pytest_autofl.control.program import parse, starter
    from pytest_autofl.core.contract import load_contract
    from pytest_autofl.core.schema import load_schema

    if args.out.exists() and not args.force:
        print(f"autofl init: {args.out} exists; pass --force to replace it", file=sys.stderr)
        return 2
    contract = load_contract(args.benchmarks_dir, args.benchmark)
    profile = contract.directory / "profile.md"
    text = starter(
        args.benchmark, load_schema(args.surface_dir), profile.read_text() if profile.is_file() else ""
    )
    parse(text, args.out).narrow(load_schema(args.surface_dir))  # the starter is a valid program
    args.out.write_text(text)
    print(
        f"autofl init: wrote {args.out} for {args.benchmark}; edit its intent, then run pytest --autofl-iterations=N"
    )
    return 0


def _campaign(args: argparse.Namespace) -> tuple[list[Row], str]:
    """The rows of one campaign (the benchmark's latest contract) and the benchmark."""
    from pytest_autofl.ledger.store import read_rows

    rows = read_rows(args.ledger)
    if not rows:
        raise AutoFLError(f"{args.ledger}: no rows yet")
    benchmark = args.benchmark or rows[-1].benchmark
    mine = [r for r in rows if r.benchmark == benchmark]
    if not mine:
        raise AutoFLError(f"{args.ledger}: no rows of benchmark {benchmark!r}")
    sha = mine[-1].contract_sha
    return [r for r in mine if r.contract_sha == sha], benchmark


def _program(args: argparse.Namespace) -> Program:
    from pytest_autofl.control.program import load

    return load(args.program)


def _plateau(args: argparse.Namespace) -> int:
    from pytest_autofl.control.plateau import watch

    rows, _ = _campaign(args)
    print("\n".join(watch(rows, args.after or _program(args).plateau_after).lines()))
    return 0


def _next(args: argparse.Namespace) -> int:
    from pytest_autofl.core.candidate import CandidateFactory
    from pytest_autofl.core.contract import load_contract
    from pytest_autofl.core.schema import load_schema
    from pytest_autofl.literature.cards import load_cards
    from pytest_autofl.search.advice import advise

    program = _program(args)
    args.benchmark = args.benchmark or program.benchmark
    rows, benchmark = _campaign(args)
    contract = load_contract(args.benchmarks_dir, benchmark)
    rows = [r for r in rows if r.contract_sha == contract.sha]
    factory = CandidateFactory(program.narrow(load_schema(args.surface_dir)))
    advice = advise(
        rows, contract, factory, args.surface_dir, load_cards(args.cards_dir), program.plateau_after
    )
    print(json.dumps(advice.as_dict()) if args.json else "\n".join(advice.lines()))
    return 0


def _new(args: argparse.Namespace) -> int:
    from pytest_autofl.preflight import run_checks
    from pytest_autofl.scaffold import contract_for, new_benchmark

    dataset = json.loads(args.dataset) if args.dataset.lstrip().startswith("{") else args.dataset
    split = {"num_clients": args.clients, "partition": args.partition}
    split |= {"dirichlet_alpha": args.alpha} if args.partition in ("dirichlet", "quantity") else {}
    raw = contract_for(args.name, dataset, args.metric, split)
    root = args.benchmarks_dir.resolve().parent
    target, violations = new_benchmark(
        root, args.benchmarks_dir, args.surface_dir, args.name, raw, args.from_client_script
    )
    print(f"autofl new: wrote {target} (contract, pin, profile)")
    for violation in violations:
        print(f"autofl new: {violation}")
    if violations:
        print(
            f"autofl new: fix {len(violations)} surface rule(s) in surfaces-{args.name}/, then pytest --autofl-check"
        )
        return 1
    passed, problems = run_checks(args.benchmarks_dir, args.name, args.surface_dir, Path("results.tsv"))
    for line in problems:
        print(f"autofl new: check FAILED: {line}")
    if problems:
        return 1
    print(
        f"autofl new: {len(passed)} checks passed; next: pytest --autofl-benchmark {args.name} --autofl-iterations=5"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_autofl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--benchmarks-dir", type=Path, default=Path("benchmarks"), help="default: %(default)s"
    )
    common.add_argument("--surface-dir", type=Path, default=Path("surfaces"), help="default: %(default)s")
    common.add_argument("--program", type=Path, default=Path("program.md"), help="default: %(default)s")

    rep = commands.add_parser(
        "report", parents=[common], help="report.md, report.json, progress.png, curves.png (no training)"
    )
    rep.add_argument("ledger", type=Path, help="the ledger, e.g. results.tsv")
    rep.add_argument("--out", type=Path, default=Path("autofl-report"), help="default: %(default)s")
    rep.add_argument("--benchmark", help="report this benchmark's rows (default: the last row's contract)")
    rep.add_argument("--contract", help="report this contract_sha (a prefix is enough)")
    rep.add_argument("--json", action="store_true", help="also print report.json to stdout")
    rep.set_defaults(run=_report)

    ini = commands.add_parser("init", parents=[common], help="write a commented starter program.md")
    ini.add_argument("--benchmark", default="digits", help="default: %(default)s")
    ini.add_argument("--out", type=Path, default=Path("program.md"), help="default: %(default)s")
    ini.add_argument("--force", action="store_true", help="replace an existing file")
    ini.set_defaults(run=_init)

    new = commands.add_parser(
        "new", parents=[common], help="a new benchmark from your data (and Client API script)"
    )
    new.add_argument("name", help="the benchmark's name (its directory under --benchmarks-dir)")
    new.add_argument(
        "--dataset", required=True, help="a bundled set (sklearn.load_wine) or a JSON dataset block (README)"
    )
    new.add_argument("--metric", default="accuracy", help="default: %(default)s")
    new.add_argument("--clients", type=int, default=4, help="default: %(default)s")
    new.add_argument(
        "--partition", default="dirichlet", help="dirichlet, iid, quantity or site (default: %(default)s)"
    )
    new.add_argument("--alpha", type=float, default=0.5, help="Dirichlet alpha (default: %(default)s)")
    new.add_argument(
        "--from-client-script", type=Path, help="your Client API training script: a surface of its own"
    )
    new.set_defaults(run=_new)

    for name, run, text in (
        ("plateau", _plateau, "the plateau watchdog's key=value lines"),
        ("next", _next, "what the loop would do next, and why"),
    ):
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("ledger", type=Path, help="the ledger, e.g. results.tsv")
        sub.add_argument("--benchmark", help="default: the program's, else the last row's")
        sub.set_defaults(run=run)
    commands.choices["plateau"].add_argument(
        "--after", type=int, help="threshold (default: the program's, 8)"
    )
    commands.choices["next"].add_argument("--json", action="store_true", help="one JSON object")
    commands.choices["next"].add_argument(
        "--cards-dir", type=Path, default=Path("skills/literature/cards"), help="default: %(default)s"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (AutoFLError, OSError) as exc:
        print(f"autofl {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
