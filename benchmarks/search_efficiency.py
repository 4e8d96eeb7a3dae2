"""Search efficiency: the same candidate budget for the built-in proposer, Optuna's TPE and random search and the
hybrid (the built-in walk, then TPE), each repeated with several proposer seeds, on real NVFlare runs.

    python benchmarks/search_efficiency.py [--benchmark digits-skew] [--proposers builtin optuna:tpe optuna:random hybrid]
        [--seeds 0 1 2] [--budget 20] [--parallel 2] [--out benchmarks/results/search-efficiency]
        [--work .autofl/search-efficiency]

Runnable in parts: each (proposer, seed) run writes its record ``<out>/<proposer>-s<seed>.json`` after every
candidate (the records are small and kept in the repository, so results accumulate across machines and
sessions); its ledger and runs stay in ``<work>``. An interrupted run continues where it stopped (its campaign
resumes from its ledger; without the ledger it starts over), a finished one is skipped, so a 2-core machine can
do it over several sessions (pass one proposer, one seed).
Every run prints and the script ends with the table over what ``<out>`` holds: the best confirmed validation
score (the incumbent: keeps are confirmed on fresh seeds) after k = 5, 10, 20 candidates, the held-out test score
of the final best, wall time, simulations run and the time to reach the target (baseline + ``--target-gain``);
mean and range over seeds. The plot ``<out>/search_efficiency.png``: best so far vs candidates and vs wall time.
The runs share one workdir for the noise floor (measured once) but never reuse each other's seed runs; the
literature loop is off (the comparison is between proposers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_autofl.proposers.base import ProposerOptions  # noqa: E402
from pytest_autofl.search.campaign import Search  # noqa: E402

LOOKS = (5, 10, 20)


def run_one(args: argparse.Namespace, proposer: str, seed: int, path: Path) -> dict:
    """One search of ``args.budget`` candidates; its best-so-far curve and costs, written to ``path`` after
    every candidate (``done`` false until the last): an interrupted run continues its campaign from its ledger."""
    name, _, sampler = proposer.partition(":")
    label = f"{proposer.replace(':', '-')}-s{seed}"
    record: dict[str, Any] = {"proposer": proposer, "seed": seed, "curve": []}
    ledger = args.work / f"{label}.tsv"
    if path.exists() and ledger.exists():  # a partial record without its ledger (another machine) starts over
        record = json.loads(path.read_text())
    elif ledger.exists():  # a ledger without its record: its campaign would not start where the record does
        ledger.rename(ledger.with_name(f"{ledger.name}.stale-{time.strftime('%Y%m%dT%H%M%S')}"))
    search = Search(
        rootdir=ROOT,
        benchmarks_dir=ROOT / "benchmarks",
        benchmark=args.benchmark,
        surface_dir=ROOT / "surfaces",
        workdir=args.work / "work",
        ledger_path=ledger,
        progress=lambda line: None,
        force=True,  # no seed run reused from another proposer's search
        parallel=args.parallel,
        proposer=name,
        sandbox="off",  # knob-only candidates: the surface's own code
        options=ProposerOptions(sampler=sampler or "tpe", seed=seed, cards_dir=None),
    )
    curve = record["curve"]
    wall, sims = (curve[-1]["wall"], curve[-1]["sims"]) if curve else (0.0, 0)
    for k in range(len(curve) + 1, args.budget + 1):
        started = time.monotonic()
        result = search.run(search.next_candidate(), k)
        search.record(result)
        sims += sum(1 for _ in [*result.screen_runs, *result.runs, *result.extra_runs])
        sims += result.control is not None
        wall += time.monotonic() - started
        best = search.incumbent.score if search.incumbent else None
        curve.append({"k": k, "best": best, "wall": wall, "sims": sims})
        assert result.row is not None
        print(f"{label} {k:2d}: {result.row.status:8s} {result.row.score}  best {best}", flush=True)
        record["baseline"] = search.baseline.score if search.baseline else None
        path.write_text(json.dumps(record, indent=1))
    record.update(test=search.test_scores() or {}, done=True)
    return record


def reached(record: dict, gain: float, higher: bool) -> float | None:
    """Wall seconds until the best reached the baseline + ``gain`` (None: never)."""
    target = record["baseline"] + (gain if higher else -gain)
    hit = [
        c["wall"]
        for c in record["curve"]
        if c["best"] is not None and (c["best"] - target) * (1 if higher else -1) >= 0
    ]
    return hit[0] if hit else None


def spread(values: list[float], fmt: str = ".3f") -> str:
    if not values:
        return "-"
    mean = statistics.mean(values)
    return f"{mean:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})" if len(values) > 1 else f"{mean:{fmt}}"


def table(records: list[dict], gain: float, higher: bool) -> list[str]:
    lines = [
        "| proposer | runs | "
        + " | ".join(f"best@{k}" for k in LOOKS)
        + " | test (final best) | wall min | sims | "
        f"min to +{gain:g} |",
        "|---" * (6 + len(LOOKS)) + "|",
    ]
    for proposer in sorted({r["proposer"] for r in records}):
        mine = [r for r in records if r["proposer"] == proposer]
        at = [spread([c["best"] for r in mine for c in r["curve"] if c["k"] == k]) for k in LOOKS]
        tests = [r["test"]["best"] for r in mine if r["test"].get("best") is not None]
        walls = [r["curve"][-1]["wall"] / 60 for r in mine]
        sims = [float(r["curve"][-1]["sims"]) for r in mine]
        times = [t / 60 for r in mine if (t := reached(r, gain, higher)) is not None]
        hits = f"{spread(times, '.1f')} [{len(times)}/{len(mine)}]"
        lines.append(
            f"| {proposer} | {len(mine)} | "
            + " | ".join(at)
            + f" | {spread(tests)} | {spread(walls, '.1f')} | {spread(sims, '.0f')} | {hits} |"
        )
    return lines


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (by_k, by_wall) = plt.subplots(1, 2, figsize=(11, 4))
    for proposer in sorted({r["proposer"] for r in records}):
        mine = [r for r in records if r["proposer"] == proposer]
        n = min(len(r["curve"]) for r in mine)
        best = np.array([[c["best"] for c in r["curve"][:n]] for r in mine], dtype=float)
        ks = np.arange(1, n + 1)
        line = by_k.plot(ks, best.mean(axis=0), label=f"{proposer} (n={len(mine)})")[0]
        by_k.fill_between(ks, best.min(axis=0), best.max(axis=0), color=line.get_color(), alpha=0.2)
        for r in mine:
            by_wall.step(
                [c["wall"] / 60 for c in r["curve"]],
                [c["best"] for c in r["curve"]],
                where="post",
                color=line.get_color(),
                alpha=0.7,
            )
    by_k.set(xlabel="candidates", ylabel="best confirmed validation score", title="mean and range over seeds")
    by_wall.set(xlabel="wall minutes", ylabel="best confirmed validation score", title="each run")
    by_k.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits-skew")
    parser.add_argument(
        "--proposers", nargs="*", default=["builtin", "optuna:tpe", "optuna:random", "hybrid"]
    )
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--target-gain", type=float, default=0.20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search-efficiency")
    parser.add_argument("--work", type=Path, default=ROOT / ".autofl" / "search-efficiency")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for proposer in args.proposers:
        for seed in args.seeds:
            path = args.out / f"{proposer.replace(':', '-')}-s{seed}.json"
            if not (path.exists() and json.loads(path.read_text()).get("done")):
                path.write_text(json.dumps(run_one(args, proposer, seed, path), indent=1))
    records = [r for p in sorted(args.out.glob("*-s*.json")) if (r := json.loads(p.read_text())).get("done")]
    from pytest_autofl.core.contract import load_contract

    higher = load_contract(ROOT / "benchmarks", args.benchmark).higher_is_better
    print("\n".join(table(records, args.target_gain, higher)))
    plot(records, args.out / "search_efficiency.png")
    print(f"plot: {args.out / 'search_efficiency.png'}")


if __name__ == "__main__":
    main()
