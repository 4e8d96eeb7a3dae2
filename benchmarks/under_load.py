"""Under load: a knob-only search on an oversubscribed machine, against the same search on an idle one.

    python benchmarks/under_load.py [--benchmark digits-smoke] [--iterations 10] [--load 0 1 3 6]

For each load, a fresh copy of the project runs ``pytest --autofl-iterations=N`` with ``load x cores``
busy-loop processes beside it (``tests/load.py``; 0 is the idle reference), and, under load, one client and
then one server of FLARE stopped (SIGSTOP) for 8 s, longer than FLARE's default message timeouts. Per load:
crash rows (goal: 0), seed runs re-run for the machine's sake (``retries``), messaging errors FLARE recovered
from (``recovered``), wall time, and whether every (candidate, seed) score equals the idle search's. Prints a
table and writes the record (commit, date, machine, command, rows) to ``benchmarks/results/under-load/``.
Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from load import Stopper, busy  # noqa: E402
from records import Record  # noqa: E402

from pytest_autofl.ledger import store  # noqa: E402


def search(benchmark: str, iterations: int, load: int) -> dict:
    """One search in a fresh project copy with ``load`` busy loops per core (and the stops, under load)."""
    with tempfile.TemporaryDirectory(prefix="autofl-under-load-") as tmp:
        project = Path(tmp)
        for name in ("benchmarks", "surfaces"):
            shutil.copytree(
                ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "results")
            )
        (project / "pytest.ini").write_text("[pytest]\ntestpaths = benchmarks\n")
        argv = [sys.executable, "-m", "pytest", f"--autofl-iterations={iterations}"]
        argv += [f"--autofl-benchmark={benchmark}", "-p", "no:cacheprovider", "-q"]
        stopper = Stopper(project / ".autofl")
        if load:
            stopper.start()
        started = time.monotonic()
        with busy(load):
            done = subprocess.run(argv, cwd=project, capture_output=True, text=True)
        wall = time.monotonic() - started
        stopper.done.set()
        rows = store.read_rows(project / "results.tsv")
        return {
            "load_per_core": load,
            "busy_processes": load * (os.cpu_count() or 1),
            "exit_code": done.returncode,
            "candidates": len(rows),
            "crash": sum(r.status == "crash" for r in rows),
            "crash_reasons": [r.reason[:300] for r in rows if r.status == "crash"],
            "retries": sum(len(r.retry_reasons) for r in rows),
            "retry_reasons": [reason for r in rows for reason in r.retry_reasons],
            "recovered": sum(r.recovered or 0 for r in rows),
            "stopped": [f"{run} {whose}" for run, whose, _ in stopper.stopped],
            "wall_seconds": round(wall, 1),
            "verdicts": {s: sum(r.status == s for r in rows) for s in sorted({r.status for r in rows})},
            "seed_scores": {r.candidate_id: {str(k): v for k, v in r.seed_scores.items()} for r in rows},
            "infra": rows[0].infra if rows else "",
        }


def table(records: list[dict]) -> list[str]:
    idle = next((r["seed_scores"] for r in records if r["load_per_core"] == 0), None)
    lines = [
        "| load (busy loops per core) | candidates | crash | retries | recovered | wall s | scores = idle | exit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        same = "-" if idle is None or r["load_per_core"] == 0 else _same(idle, r["seed_scores"])
        lines.append(
            f"| {r['load_per_core']}x ({r['busy_processes']}) | {r['candidates']} | {r['crash']} | {r['retries']} "
            f"| {r['recovered']} | {r['wall_seconds']} | {same} | {r['exit_code']} |"
        )
    return lines


def _same(idle: dict, loaded: dict) -> str:
    """Every (candidate, seed) score both searches have, compared exactly; how many pairs."""
    pairs = [(c, s) for c in loaded if c in idle for s in loaded[c] if s in idle[c]]
    equal = sum(idle[c][s] == loaded[c][s] for c, s in pairs)
    return f"{'yes' if equal == len(pairs) else 'NO'} ({equal}/{len(pairs)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits-smoke")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--load", type=int, nargs="+", default=[0, 1, 3, 6])
    args = parser.parse_args()
    records: list[dict] = []
    record = Record("under-load", args.benchmark)
    for load in args.load:  # the record is rewritten after each search: a stopped run keeps what it measured
        records.append(search(args.benchmark, args.iterations, load))
        print("\n".join(table(records)[-1:]), flush=True)
        path = record.write({"benchmark": args.benchmark, "iterations": args.iterations, "records": records})
    print("\n".join(table(records)))
    print(f"record: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
