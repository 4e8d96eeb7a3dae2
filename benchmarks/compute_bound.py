"""What the measured compute bound catches: the clients' CPU seconds per run (the zygote's wait4, in the
sandbox) of honest candidates and of clients that train k times the contract's step cap while reporting the
cap, against the baseline's.

    python benchmarks/compute_bound.py [--benchmark digits] [--overruns 3 10] [--parallel 2]

Prints, per candidate, the clients' CPU seconds per run (median and range over the selection seeds), the ratio
to the calibration baseline's median and to the baseline run beside the candidate (a code change's compute
reference: same load), the wall time, the mean validation score, and whether the bound flagged it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import yaml
from scratch import ROOT, scratch_search

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.literature.cards import load_cards
from pytest_autofl.proposers.candidate_file import load_candidate_file


def overrun_client(k: int) -> str:
    """The surface's client, training ``k`` times the step cap and reporting the cap."""
    src = (ROOT / "surfaces" / "client_train.py").read_text()
    src = src.replace("while steps < steps_per_round:", f"while steps < steps_per_round * {k}:")
    src = src.replace("if steps >= steps_per_round:", f"if steps >= steps_per_round * {k}:")
    src = src.replace(
        '{"NUM_STEPS_CURRENT_ROUND": steps}', '{"NUM_STEPS_CURRENT_ROUND": min(steps, steps_per_round)}'
    )
    assert src.count(f"steps_per_round * {k}:") == 2 and "min(steps, steps_per_round)" in src
    return src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits")
    parser.add_argument("--overruns", type=int, nargs="*", default=[3, 10])
    parser.add_argument(
        "--knobs", nargs="*", default=["arch=cnn_small", "arch=mlp_wide", "aggregator=scaffold"]
    )
    parser.add_argument(
        "--cards", nargs="*", default=[], help="card ids: their faithful run (honest code changes)"
    )
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="compute-bound-") as tmp:
        search = scratch_search(
            Path(tmp), args.benchmark, calibrate=False, force=True, parallel=args.parallel, sandbox="on"
        )
        candidates: list[tuple[str, Candidate]] = [("baseline", search.factory.make({}))]
        for knob in args.knobs:
            name, value = knob.split("=")
            candidates.append((knob, search.factory.make({name: value})))
        cards = {card.id: card for card in load_cards(ROOT / "skills" / "literature" / "cards")}
        for card_id in args.cards:
            made = cards[card_id].candidate("faithful", search.factory, ROOT / "surfaces", search.surface, "")
            candidates.append((f"card {card_id} (faithful)", made))
        for k in args.overruns:
            path = Path(tmp) / f"overrun-{k}.yaml"
            path.write_text(
                yaml.safe_dump({"description": f"{k}x", "files": {"client_train.py": overrun_client(k)}})
            )
            candidates.append(
                (f"{k}x steps, reports the cap", load_candidate_file(path, search.factory, ROOT / "surfaces"))
            )
        calibration = None
        cap = search.contract.max_cpu_ratio
        print(f"{args.benchmark}: clients' CPU seconds per run; cap {cap:g}x the baseline's beside it")
        for index, (label, candidate) in enumerate(candidates, start=1):
            result = search.run(candidate, index)
            if index == 1:
                search.record(result)  # the incumbent: the others then run the full seed protocol
            if result.error:
                print(f"{label:32s} CRASH: {result.error}", flush=True)
                continue
            cpu = [r.cpu_seconds for r in result.runs if r.cpu_seconds is not None]
            scores = [r.score for r in result.runs if r.score is not None]
            wall = statistics.median(r.runtime_seconds for r in result.runs if r.runtime_seconds)
            median = statistics.median(cpu)
            calibration = calibration or median
            beside = result.reference.cpu_seconds if result.reference else None
            reference = beside or calibration
            flagged = any(v.startswith("measured compute") for v in result.violations)
            print(
                f"{label:32s} cpu {median:6.2f} s ({min(cpu):.2f}-{max(cpu):.2f}, n={len(cpu)})  "
                f"{median / calibration:5.2f}x calibration  {median / reference:5.2f}x beside "
                f"({reference:.2f} s)  wall {wall:5.1f} s  score {statistics.mean(scores):.3f}  "
                f"{'FLAGGED' if flagged else 'within'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
