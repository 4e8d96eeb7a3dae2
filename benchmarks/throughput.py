"""Throughput: candidates per hour with ``-n 1`` and ``-n 2``, against a bare default SimEnv loop, side by side.

    python benchmarks/throughput.py [--benchmark digits-smoke digits] [--iterations 6] [--workers 1 2]
                                    [--bare-runs 6] [--parallel auto] [--preload on] [--record]

For each benchmark and worker count, a fresh copy of the project (no cached noise floor, no finished runs to
reuse) runs ``pytest [-n W] --autofl-iterations=N``: the real search, calibration included. Then the first
``--bare-runs`` (candidate, seed) pairs of that search run again as a plain serial loop of
``recipe.execute(SimEnv(...))`` with NVFlare's defaults and no harness (``bare_simenv.py``, one process each). The ratio
compares the search's wall time with the bare loop's time for the same number of simulations (mean bare
run x simulations), so it measures infrastructure throughput, not which candidates were proposed.
Prints a table and one ``THROUGHPUT=`` JSON line (``--record``: also a record under
``benchmarks/results/throughput/``). Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from records import Record  # noqa: E402

from pytest_autofl.ledger import analysis  # noqa: E402


def search(benchmark: str, iterations: int, workers: int, parallel: str, preload: str, keep: Path) -> dict:
    """One real search in a fresh project copy; wall time, candidates and simulations. Its report
    (``--autofl-report``) and ledger are kept in ``keep``."""
    with tempfile.TemporaryDirectory(prefix="autofl-throughput-") as tmp:
        project = Path(tmp)
        for name in ("benchmarks", "surfaces"):
            shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        (project / "pytest.ini").write_text("[pytest]\ntestpaths = benchmarks\n")
        argv = [
            sys.executable,
            "-m",
            "pytest",
            f"--autofl-iterations={iterations}",
            f"--autofl-benchmark={benchmark}",
        ]
        argv += [f"--autofl-parallel={parallel}", f"--autofl-preload={preload}", "--autofl-report=report"]
        argv += ["-p", "no:cacheprovider", "-q"]
        if workers > 1:
            argv += ["-n", str(workers)]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=project, capture_output=True, text=True)
        wall = time.monotonic() - started
        keep.mkdir(parents=True, exist_ok=True)
        (keep / "pytest.log").write_text(done.stdout + done.stderr)
        if done.returncode not in (0, 1):  # 1: some candidate crashed or was invalid, which is a result
            sys.exit(f"search failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        for log in (project / ".autofl" / "runs").glob("*/*/seed-*/run.log"):  # every simulation's log
            target = keep / "logs" / log.parent.parent.name / log.parent.name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, target / "run.log")
        shutil.copytree(project / "report", keep, dirs_exist_ok=True)
        shutil.copy2(project / "results.tsv", keep / "results.tsv")
        frame = analysis.load_ledger(project / "results.tsv")
        # simulations: every selection and confirmation run in the ledger, plus calibration's repeat of seed 0
        simulations = analysis.seed_runs(frame) + 1
        pairs = [
            (json.loads(params), int(seed))
            for params, seeds in zip(frame["params"], frame["seeds"], strict=True)
            for seed in json.loads(seeds or "[]")
        ]
        return {
            "workers": workers,
            "candidates": len(frame),
            "simulations": simulations,
            "wall_seconds": round(wall, 1),
            "candidates_per_hour": round(len(frame) / wall * 3600, 1),
            "seconds_per_simulation": round(wall / simulations, 2),
            "verdicts": analysis.verdict_counts(frame),
            "pairs": pairs,
        }


def bare_run(benchmark: str, knobs: dict, seed: int) -> float:
    """One default SimEnv run in its own process (each run imports the candidate's surface afresh); the
    seconds of ``recipe.execute`` as the script measures them (its imports not counted: a conservative ratio)."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bare_simenv.py"),
            "--benchmark",
            benchmark,
            "--seed",
            str(seed),
        ]
        + ["--knobs", json.dumps(knobs)],
        capture_output=True,
        text=True,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BARE_SIMENV ")), None)
    if done.returncode != 0 or line is None:
        sys.exit(
            f"bare SimEnv run failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return float(line.rsplit("seconds=", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", nargs="+", default=["digits-smoke", "digits"])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--bare-runs", type=int, default=6)
    parser.add_argument("--parallel", default="auto", help="--autofl-parallel for the searches")
    parser.add_argument(
        "--preload", default="on", choices=["on", "off"], help="--autofl-preload for the searches"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("autofl-throughput"),
        help="where each search's report and ledger are kept",
    )
    parser.add_argument("--record", action="store_true", help="write the table to benchmarks/results/")
    args = parser.parse_args()
    record = Record("throughput", "-".join(args.benchmark))  # the commit that runs, not the one at the end
    report = []
    for benchmark in args.benchmark:
        runs = []
        for workers in args.workers:
            print(
                f"[throughput] {benchmark}: pytest -n {workers} --autofl-iterations={args.iterations} ...",
                flush=True,
            )
            runs.append(
                search(
                    benchmark,
                    args.iterations,
                    workers,
                    args.parallel,
                    args.preload,
                    args.out / f"{benchmark}-n{workers}",
                )
            )
            r = runs[-1]
            print(
                f"[throughput]   {r['candidates']} candidates, {r['simulations']} simulations in {r['wall_seconds']} s",
                flush=True,
            )
        pairs = runs[0]["pairs"][: args.bare_runs]
        print(
            f"[throughput] {benchmark}: bare default SimEnv loop over {len(pairs)} of the same candidate-seeds ...",
            flush=True,
        )
        bare = [bare_run(benchmark, knobs, seed) for knobs, seed in pairs]
        bare_mean = sum(bare) / len(bare)
        for r in runs:
            r["bare_loop_seconds_same_simulations"] = round(bare_mean * r["simulations"], 1)
            r["speedup_vs_bare_default_simenv"] = round(bare_mean * r["simulations"] / r["wall_seconds"], 2)
            r.pop("pairs")
        base = runs[0]
        for r in runs:
            r["speedup_vs_first"] = round(r["candidates_per_hour"] / base["candidates_per_hour"], 2)
        report.append({"benchmark": benchmark, "bare_seconds_per_run": round(bare_mean, 1), "runs": runs})

    print()
    print(
        f"{'benchmark':<14}{'-n':>3}{'cand':>6}{'sims':>6}{'wall s':>9}{'cand/h':>9}{'s/sim':>8}"
        f"{'bare s/sim':>12}{'x bare':>8}{'x -n1':>7}"
    )
    for b in report:
        for r in b["runs"]:
            print(
                f"{b['benchmark']:<14}{r['workers']:>3}{r['candidates']:>6}{r['simulations']:>6}{r['wall_seconds']:>9}"
                f"{r['candidates_per_hour']:>9}{r['seconds_per_simulation']:>8}{b['bare_seconds_per_run']:>12}"
                f"{r['speedup_vs_bare_default_simenv']:>8}{r['speedup_vs_first']:>7}"
            )
    print("THROUGHPUT=" + json.dumps(report))
    if args.record:
        figures = {"iterations": args.iterations, "parallel": args.parallel, "preload": args.preload}
        path = record.write({**figures, "report": report})
        print(f"record: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
