"""What a screen would have done to a finished search: how much it saves, and how often it drops a candidate
the full contract kept (a false drop).

    python benchmarks/screen_check.py LEDGER [--benchmark digits-skew] [--rounds 2] [--seed 500]
        [--margins 0.02 0.05 0.1] [--parallel 2]

Takes the knob-only rows of a search that ran without a screen (e.g. one of ``search_efficiency.py``'s
ledgers), runs every candidate and every incumbent it was compared with on the screen (``--rounds`` rounds,
the fresh ``--seed``) once, and prints per margin: candidates dropped, false drops (dropped but kept by the
contract), the wall time the dropped trials took and what all the screens cost, and the resulting speed-up per
candidate. Screen runs are reused from earlier calls (the reuse index of ``.autofl/screen-check``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_autofl.core.candidate import Candidate  # noqa: E402
from pytest_autofl.ledger.store import read_rows  # noqa: E402
from pytest_autofl.run.parallel import run_batch  # noqa: E402
from pytest_autofl.search.campaign import Search  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--benchmark", default="digits-skew")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=500)
    parser.add_argument("--margins", type=float, nargs="*", default=[0.02, 0.05, 0.1])
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    work = ROOT / ".autofl" / "screen-check"
    search = Search(
        rootdir=ROOT,
        benchmarks_dir=ROOT / "benchmarks",
        benchmark=args.benchmark,
        surface_dir=ROOT / "surfaces",
        workdir=work,
        ledger_path=work / "unused.tsv",
        progress=lambda line: None,
        parallel=args.parallel,
        sandbox="off",
    )
    contract = search.contract
    screen = {"rounds": args.rounds, "seed": args.seed, "margin": 0.0}
    screened = replace(contract, raw={**contract.raw, "screen": screen}).screened()
    rows = [r for r in read_rows(args.ledger) if r.contract_sha == contract.sha and not r.patch_sha]
    by_id = {r.candidate_id: r for r in rows}
    judged = [r for r in rows if r.status in ("keep", "narrow", "discard") and r.incumbent_id in by_id]
    needed: dict[str, Candidate] = {}
    for r in judged + [by_id[r.incumbent_id] for r in judged]:
        needed.setdefault(r.candidate_id, search.factory.make(r.params))
    started = time.monotonic()
    jobs = [
        (search.runner_for(c, work / "screens" / cid, f"[screen] {cid}", True, screened), args.seed, "")
        for cid, c in needed.items()
    ]
    scores = {cid: run.score for cid, run in zip(needed, run_batch(jobs, args.parallel), strict=True)}
    screens_wall = time.monotonic() - started
    sign = 1 if contract.higher_is_better else -1
    print(
        f"{args.ledger}: {len(judged)} judged candidates, {len(needed)} screens ({screens_wall / 60:.1f} min)"
    )
    full = statistics.mean(r.runtime_seconds for r in judged)
    per_screen = screens_wall / math.ceil(len(needed) / max(1, args.parallel))  # one screen run's wall time
    for margin in args.margins:
        dropped = [
            r
            for r in judged
            if (s := scores[r.candidate_id]) is not None
            and (i := scores[r.incumbent_id]) is not None
            and (s - i) * sign < -margin
        ]
        false = [r.candidate_id for r in dropped if r.status == "keep"]
        saved = sum(r.runtime_seconds for r in dropped)
        cost = per_screen * len(judged)  # each candidate's screen, the incumbent's beside it
        with_screen = (full * len(judged) - saved + cost) / len(judged)
        print(
            f"margin {margin:g}: dropped {len(dropped)}/{len(judged)}, false drops {len(false)} {false}; "
            f"trial wall {full:.0f} s -> {with_screen:.0f} s per candidate ({full / with_screen:.2f}x)"
        )


if __name__ == "__main__":
    main()
