"""An unattended campaign under faults: a built-in search of ``--size`` candidates (40) on digits-smoke, its
resource limits lowered so a blow-up is caught in seconds, every third candidate a faulty code change from the
catalogue in ``tests/campaign.py`` (memory, processes, disk, an exception at import, NaN weights, a client that
kills itself or the server), SIGKILLed, its whole process tree at once, at a random moment, then run again with
the same command to the end.

    python benchmarks/unattended.py [--size 40] [--seed N] [--work .autofl/unattended]

Prints what it checks (every row once, the rows before the kill untouched, every seed run finished before the
kill taken over by the rerun, each faulty candidate a crash row naming its fault, the summary's counts, no
process left) and the figures; exits 1 if a check fails. ``tests/test_unattended.py`` runs a 4-candidate version.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import campaign  # noqa: E402

from pytest_autofl.report.summary import verdicts_line  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--seed", type=int, default=None, help="the kill's random moment (default: random)")
    parser.add_argument("--work", type=Path, default=REPO / ".autofl" / "unattended")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    root = campaign.project(args.work / "project")
    print(f"campaign of {args.size} candidates in {root}; kill seed {seed}", flush=True)
    run = campaign.kill_and_rerun(root, args.size, random.Random(seed), args.work / "first.log")
    time.sleep(1)
    written = run.rows[len(run.rows_before) :]
    faulty = [r for r in run.rows if r.proposer == "saboteur"]
    named = [
        r
        for r in faulty
        if r.status == "crash" and campaign.FAULTS[r.source.removeprefix("fault:")][2] in r.reason
    ]
    checks = {
        "the rerun ended without an internal error": run.returncode in (0, 1)
        and "INTERNALERROR" not in run.said,
        f"{args.size} rows, every candidate once": len(run.rows) == args.size
        and len({r.candidate_id for r in run.rows}) == args.size,
        "the rows before the kill untouched": [r.row_id for r in run.rows[: len(run.rows_before)]]
        == [r.row_id for r in run.rows_before],
        "every seed run finished before the kill taken over": all(
            f"reusing the finished run in {d}" in run.said for d in run.pending
        ),
        "every faulty candidate a crash row naming its fault": len(named) == len(faulty),
        "the rerun's summary counts its rows": verdicts_line(written) in run.said,
        "no process left": campaign.processes_under(root) == [],
    }
    for check, passed in checks.items():
        print(f"{'ok    ' if passed else 'FAILED'} {check}")
    statuses = Counter(r.status for r in run.rows)
    print(
        f"rows {len(run.rows)} ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}); faulty "
        f"{len(faulty)}, named {len(named)}; killed after {run.seconds[0] / 60:.1f} min with "
        f"{len(run.rows_before)} rows, {run.killed} processes, {len(run.pending)} finished seed run(s) without "
        f"a row; rerun {run.seconds[1] / 60:.1f} min"
    )
    for row in faulty:
        print(f"  {row.source:18s} {row.status:8s} {row.reason[:110]}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
