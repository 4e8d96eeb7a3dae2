"""``python -m pytest_autofl report results.tsv``: regenerate the report from a ledger without running anything."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pytest_autofl.core.errors import AutoFLError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_autofl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rep = commands.add_parser(
        "report", help="write report.md, report.json and progress.png from a ledger (no training)"
    )
    rep.add_argument("ledger", type=Path, help="the ledger, e.g. results.tsv")
    rep.add_argument(
        "--out", type=Path, default=Path("autofl-report"), help="output directory (default: %(default)s)"
    )
    rep.add_argument(
        "--benchmark", help="report this benchmark's rows (default: the ledger's last row's contract)"
    )
    rep.add_argument("--contract", help="report this contract_sha (a prefix is enough)")
    rep.add_argument(
        "--benchmarks-dir",
        type=Path,
        default=Path("benchmarks"),
        help="where the benchmark contracts are, for the metric's name and direction (default: %(default)s)",
    )
    rep.add_argument("--json", action="store_true", help="also print report.json to stdout")
    args = parser.parse_args(argv)

    from pytest_autofl.ledger.analysis import load_ledger, one_contract
    from pytest_autofl.report.facts import scoring_for, write_report

    try:
        rows = one_contract(load_ledger(args.ledger), args.benchmark, args.contract)
        benchmark = str(rows["benchmark"].iloc[-1])
        scoring = scoring_for(args.benchmarks_dir, benchmark)
        facts = write_report(
            args.ledger, args.out, scoring, benchmark=args.benchmark, contract_sha=args.contract
        )
    except (AutoFLError, OSError) as exc:
        print(f"autofl report: {exc}", file=sys.stderr)
        return 2
    if not scoring.from_contract:
        print(
            f"autofl report: no contract {benchmark!r} under {args.benchmarks_dir}: "
            "the score is assumed higher-is-better",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(facts))
    else:
        print(f"autofl report: {args.out / 'report.md'}, report.json, progress.png ({facts['rows']} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
