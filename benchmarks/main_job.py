"""The main job as a new user meets it: the README's search on a fresh clone, timed, its verdicts counted.

    python benchmarks/main_job.py [--iterations 20] [--record]

Clones this repository's HEAD into a temporary directory (no ledger, no noise floor, no finished runs to
reuse) and runs ``python -m pytest --autofl-iterations=N`` there with this interpreter (the installed
packages; the clone's own ``pytest_autofl``). Prints the exit code, the wall time, the verdicts, crashes,
retries and the best row; ``--record`` writes them to ``benchmarks/results/main-job/`` with the commit, date,
machine and command. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from records import Record
from scratch import ROOT

from pytest_autofl.ledger import store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="main-job-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        command = [
            sys.executable,
            "-m",
            "pytest",
            f"--autofl-iterations={args.iterations}",
            "-p",
            "no:cacheprovider",
        ]
        started = time.monotonic()
        done = subprocess.run(command, cwd=clone, capture_output=True, text=True)
        seconds = time.monotonic() - started
        rows = store.read_rows(clone / "results.tsv") if (clone / "results.tsv").exists() else []
    verdicts = collections.Counter(row.status for row in rows)
    kept = [row for row in rows if row.status == "keep"]
    best = max(kept, key=lambda row: row.score or 0.0, default=None)
    figures = {
        "exit_code": done.returncode,
        "pytest_wall_seconds": round(seconds, 1),
        "rows": len(rows),
        "verdicts": dict(sorted(verdicts.items())),
        "crash": verdicts.get("crash", 0),
        "retries": sum(len(row.retry_reasons) for row in rows),
        "infra": sorted({row.infra for row in rows}),
        "best": {"candidate": best.candidate_id, "validation": best.score} if best else None,
        "summary": done.stdout.strip().splitlines()[-12:],
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.record:
        print(f"record: {Record('main-job', 'digits').write(figures).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
