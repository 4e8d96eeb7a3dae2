"""What the measured compute bound catches, and how often it wrongly flags honest code: each code change's
trainer CPU per task (the harness' task windows, in the sandbox) against its twin's: the unchanged surface with
the same knobs, given the same task in the same moments.

    python benchmarks/compute_bound.py [--benchmark digits-smoke] [--repeats 5] [--overruns 1.5 2]
        [--first-overruns 2] [--busy 0] [--record]

Honest code changes: the surface's client with a comment added (the same work), over several knob sets,
``--repeats`` times each, and the faithful run of each ``--cards`` literature card. Attacks: clients that train
k times the step cap and report the cap, in every task or (``first``) in the first task only. Prints, per
candidate, the median ratios to the twin of the script's start-up, its first task and its later tasks, the
cap, and whether the bound flagged it; ``--busy N`` runs N busy loops per core beside it all (``tests/load.py``); ``--record`` writes the table to
``benchmarks/results/compute-bound/`` with the commit, date, machine and command.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from records import Record
from scratch import ROOT, scratch_search

sys.path.insert(0, str(ROOT / "tests"))
from load import busy  # noqa: E402

from pytest_autofl.core.candidate import Candidate
from pytest_autofl.core.invariants import WINDOWS, RunFacts, twin_ratios
from pytest_autofl.literature.cards import load_cards
from pytest_autofl.proposers.candidate_file import load_candidate_file

KNOBS = ([], ["fedprox_mu=0.1"], ["aggregator=scaffold"], ["arch=mlp_wide"], ["arch=cnn_small"], ["lr=0.1"])


def overrun_client(k: float, first_only: bool = False) -> str:
    """The surface's client, training ``k`` times the step cap (in every round, or in the first only) and
    reporting the cap."""
    factor = f"({k} if round_num == 0 else 1)" if first_only else f"{k}"
    src = (ROOT / "surfaces" / "client_train.py").read_text()
    src = src.replace("while steps < steps_per_round:", f"while steps < steps_per_round * {factor}:")
    src = src.replace("if steps >= steps_per_round:", f"if steps >= steps_per_round * {factor}:")
    src = src.replace(
        '{"NUM_STEPS_CURRENT_ROUND": steps}', '{"NUM_STEPS_CURRENT_ROUND": min(steps, steps_per_round)}'
    )
    assert src.count(f"steps_per_round * {factor}:") == 2 and "min(steps, steps_per_round)" in src
    return src


def _file(tmp: Path, name: str, description: str, client: str, knobs: list[str], search) -> Candidate:
    path = tmp / f"{name}.yaml"
    params = {k: yaml.safe_load(v) for k, v in (knob.split("=") for knob in knobs)}
    spec = {"description": description, "files": {"client_train.py": client}, "knobs": params}
    path.write_text(yaml.safe_dump(spec))
    return load_candidate_file(path, search.factory, ROOT / "surfaces")


def _ratios(result) -> dict[str, float | None]:
    """The median ratio of the candidate's CPU to its twin's per kind of window (``WINDOWS``)."""
    runs = [
        RunFacts(r.seed, r.audit, r.n_params, task_seconds=r.task_seconds, twin_seconds=r.twin_seconds)
        for r in result.runs
    ]
    ratios, _ = twin_ratios(runs)
    return {w: statistics.median(ratios[w]) if ratios[w] else None for w in WINDOWS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits-smoke")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--overruns", type=float, nargs="*", default=[1.5, 2.0])
    parser.add_argument("--first-overruns", type=float, nargs="*", default=[2.0])
    parser.add_argument("--cards", nargs="*", default=["fedyogi", "fedadagrad"])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--busy", type=int, default=0, help="busy loops per core beside the runs")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    honest_client = (ROOT / "surfaces" / "client_train.py").read_text() + "\n# the same work, written again\n"
    rows = []
    loaded = busy(args.busy) if args.busy else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="compute-bound-") as tmp, loaded:
        search = scratch_search(
            Path(tmp), args.benchmark, calibrate=False, force=True, parallel=args.parallel, sandbox="on"
        )
        candidates: list[tuple[str, str, Candidate]] = [("baseline", "baseline", search.factory.make({}))]
        for repeat in range(args.repeats):
            for knobs in KNOBS:
                label = f"honest {' '.join(knobs) or 'defaults'} #{repeat}"
                candidates.append(
                    (
                        "honest",
                        label,
                        _file(Path(tmp), f"h{len(candidates)}", label, honest_client, knobs, search),
                    )
                )
        cards = {card.id: card for card in load_cards(ROOT / "skills" / "literature" / "cards")}
        for card_id in args.cards:
            made = cards[card_id].candidate("faithful", search.factory, ROOT / "surfaces", search.surface, "")
            candidates.append(("honest", f"card {card_id} (faithful)", made))
        for k in args.overruns:
            candidates.append(
                (
                    "attack",
                    f"{k:g}x steps",
                    _file(Path(tmp), f"o{k:g}", f"{k:g}x", overrun_client(k), [], search),
                )
            )
        for k in args.first_overruns:
            client = overrun_client(k, first_only=True)
            candidates.append(
                (
                    "attack",
                    f"{k:g}x steps, first task only",
                    _file(Path(tmp), f"f{k:g}", f"{k:g}x first", client, [], search),
                )
            )
        cap = search.contract.max_cpu_ratio
        print(
            f"{args.benchmark}: trainer CPU per task vs its twin (the unchanged surface); cap {cap:g}x",
            flush=True,
        )
        for index, (kind, label, candidate) in enumerate(candidates, start=1):
            result = search.run(candidate, index)
            if index == 1:
                search.record(result)  # the incumbent: the others then run the full seed protocol
                continue
            ratios = _ratios(result)
            flagged = any(v.startswith("measured compute") for v in result.violations)
            rows.append({"kind": kind, "label": label, **ratios, "flagged": flagged, "error": result.error})
            shown = (
                "  ".join(f"{w} {ratios[w]:.2f}x" for w in WINDOWS)
                if all(ratios.values())
                else f"no ratio ({result.error})"
            )
            print(f"{kind:6s} {label:40s} {shown}  {'FLAGGED' if flagged else 'within'}", flush=True)
    honest = [r for r in rows if r["kind"] == "honest" and r["later"]]
    false = sum(r["flagged"] for r in honest)
    spans = []
    for w in WINDOWS:
        seen = sorted(r[w] for r in honest)
        spans.append(f"{w} {seen[0]:.2f}-{seen[-1]:.2f} (median {statistics.median(seen):.2f})")
    print(f"honest: {false} of {len(honest)} flagged; ratios " + "; ".join(spans))
    if args.record:
        figures = {
            "cap": cap,
            "busy_per_core": args.busy,
            "rows": rows,
            "honest_flagged": false,
            "honest_runs": len(honest),
        }
        name = f"{args.benchmark}-busy{args.busy}" if args.busy else args.benchmark
        print(f"recorded: {Record('compute-bound', name).write(figures).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
