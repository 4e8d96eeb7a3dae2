"""What the sandbox around candidate code costs: the same real NVFlare runs with and without bubblewrap.

    python benchmarks/sandbox_cost.py [--benchmark digits-smoke] [--rounds 3] [--record]

Each round runs the benchmark's baseline calibration (every selection seed and a repeat, side by side) once
with ``--autofl-sandbox on`` and once ``off``, alternating which goes first, in fresh work directories; prints
the wall seconds per seed run of each mode, the overhead, and checks the scores are identical.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from records import Record
from scratch import ROOT, scratch_search


def one(mode: str, benchmark: str, tmp: Path) -> tuple[float, list[float], dict[int, float]]:
    search = scratch_search(tmp / mode, benchmark, calibrate=True, force=True, parallel=3, sandbox=mode)
    started = time.monotonic()
    result = search.run(search.factory.make({}), 1)
    wall = time.monotonic() - started
    assert result.error is None, result.error
    return wall, [r.runtime_seconds for r in result.runs + result.extra_runs], result.seed_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits-smoke")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write the figures to benchmarks/results/")
    args = parser.parse_args()
    record = Record("sandbox-cost", args.benchmark)
    per_run: dict[str, list[float]] = {"on": [], "off": []}
    scores: dict[str, dict[int, float]] = {}
    for i in range(args.rounds):
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            with tempfile.TemporaryDirectory(prefix=f"sandbox-cost-{mode}-") as tmp:
                wall, runs, scores[mode] = one(mode, args.benchmark, Path(tmp))
            per_run[mode] += runs
            print(
                f"round {i + 1} sandbox {mode}: {wall:.1f} s wall, runs {', '.join(f'{r:.1f}' for r in runs)} s"
            )
    on, off = statistics.mean(per_run["on"]), statistics.mean(per_run["off"])
    print(
        f"mean seconds per seed run: sandbox on {on:.2f}, off {off:.2f}; overhead {on - off:+.2f} s ({(on / off - 1) * 100:+.1f}%)"
    )
    print(f"scores identical: {scores['on'] == scores['off']} ({scores['on']})")
    if args.record:
        figures = {
            "seconds_per_seed_run": {mode: [round(r, 2) for r in runs] for mode, runs in per_run.items()},
            "mean_on": round(on, 2),
            "mean_off": round(off, 2),
            "overhead_percent": round((on / off - 1) * 100, 1),
            "scores_identical": scores["on"] == scores["off"],
        }
        print(f"record: {record.write(figures).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
