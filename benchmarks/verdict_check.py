"""A real check of the verdict statistics: A/A and a known-different pair, on real NVFlare runs.

    python benchmarks/verdict_check.py [--benchmark digits-skew] [--worse-lr 0.01]

1. Calibration: the baseline on every selection seed plus a repeat of the first (the noise floor).
2. Exact A/A: the baseline again as a candidate, through the sequential verdict (must not keep).
3. Seed-shifted A/A: the baseline's scores on the second half of the seeds paired against the first half, as if
   they were two candidates (no pairing benefit: the hardest A/A; must not keep).
4. A known-different pair: a clearly worse client learning rate against the baseline (should discard).
Prints each verdict with its gain and interval, and the seconds spent. Nothing is written to your ledger.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_autofl.core.verdict import decide_under  # noqa: E402
from pytest_autofl.search.campaign import Search  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits-skew")
    parser.add_argument("--worse-lr", type=float, default=0.01)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="verdict-check-") as tmp:
        session = Search(
            rootdir=ROOT,
            benchmarks_dir=ROOT / "benchmarks",
            benchmark=args.benchmark,
            surface_dir=ROOT / "surfaces",
            workdir=Path(tmp) / "work",
            ledger_path=Path(tmp) / "results.tsv",
            progress=lambda line: print(line, flush=True),
            calibrate=True,
        )
        c = session.contract
        base = session.factory.make({})
        t0 = time.monotonic()
        v = session.record(session.run(base, 1))
        print(f"CALIBRATION {v.status}: {v.reason} ({time.monotonic() - t0:.0f} s)")
        assert session.calibration.noise is not None and session.incumbent is not None

        t0 = time.monotonic()
        aa = session.run(base, 2)
        print(
            f"EXACT A/A: {aa.verdict.status if aa.verdict else aa.status}: "
            f"{aa.verdict.reason if aa.verdict else aa.error} ({time.monotonic() - t0:.0f} s)"
        )

        scores = session.incumbent.seed_scores
        seeds = list(c.seeds)
        half = len(seeds) // 2
        shifted = {seeds[i]: scores[seeds[half + i]] for i in range(half)}
        first = {seeds[i]: scores[seeds[i]] for i in range(half)}
        sv = decide_under(c, shifted, first, session.calibration.threshold(), max_seeds=half)
        print(f"SEED-SHIFTED A/A: {sv.status}: {sv.reason}")

        t0 = time.monotonic()
        worse = session.factory.make({"lr": args.worse_lr})
        wv = session.record(session.run(worse, 3))
        print(f"KNOWN-WORSE lr={args.worse_lr}: {wv.status}: {wv.reason} ({time.monotonic() - t0:.0f} s)")
    print(f"TOTAL {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
