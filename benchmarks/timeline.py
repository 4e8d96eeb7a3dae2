"""Where one simulation's wall time goes, phase by phase, with the CPU of its processes beside it.

    python benchmarks/timeline.py [--benchmark digits] [--seed 0] [--nvflare-waits] [--sandbox on] [--record]

Runs the baseline's seed run the way a search does (exported job, prefork, sandbox, meter), then scores it.
The phases come from the harness' clock (start, the export's end, the end of the run and of its scoring) and
from NVFlare's own log lines (``ws/trial/*/log.txt``, millisecond timestamps). CPU: the export's, the
simulation's and the scoring's process trees (``RUSAGE_CHILDREN``: every process is reaped by its parent), and
within the simulation the clients' FLARE processes', the trainers' and the trainers' task windows (the meter). ``--nvflare-waits`` runs on NVFlare's own waits instead
of the harness' (``infrastructure.WAITS``); ``--record`` writes the table to ``benchmarks/results/timeline/``
with the commit, date, machine and command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from records import Record
from scratch import ROOT, scratch_search

from pytest_autofl.run import infrastructure

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - ")


def events(workspace: Path) -> list[tuple[float, str, str]]:
    """(time, site, entry) of every site's log entry, in time order."""
    found: list[tuple[float, str, str]] = []
    for log in sorted(workspace.glob("*/log.txt")):
        ours: list[tuple[float, str, str]] = []
        for line in log.read_text(errors="replace").splitlines():
            if match := _STAMP.match(line):
                stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                ours.append((stamp, log.parent.name, line[match.end() :]))
            elif ours:  # a banner's lines ("Round 1 started.") belong to the entry above them
                stamp, site, text = ours[-1]
                ours[-1] = (stamp, site, f"{text} {line.strip()}")
        found += ours
    return sorted(found)


def first(
    evts: list[tuple[float, str, str]], text: str, site: str | None = None, last: bool = False
) -> float:
    hits = [t for t, s, line in evts if text in line and (site is None or s == site)]
    if not hits:
        raise LookupError(f"no log line with {text!r}")
    return hits[-1] if last else hits[0]


def phases(
    evts: list[tuple[float, str, str]], rounds: int, marks: dict[str, float]
) -> list[tuple[str, float]]:
    """(phase, wall seconds), in order, from the start to the end of the scoring."""
    sites = sorted({s for _, s, _ in evts if s.startswith("site-")})
    points = [
        ("export the jobs (a sandboxed process)", marks["exported"]),
        ("start the simulation, import torch and nvflare once", first(evts, "Create the Simulator Server.")),
        ("server: cells, listeners, clients registered", first(evts, "Deploy and start the Server App.")),
        ("server app starts", first(evts, "Start the clients run simulation.")),
        ("client threads start their workers", first(evts, "ClientTaskWorker started to run")),
        (
            "workers connect and sync with the server",
            max(first(evts, "client runner started", s) for s in sites),
        ),
    ]
    for r in range(rounds):
        end = "Finished FedAvg." if r == rounds - 1 else f"Round {r + 1} started."
        points.append((f"round {r}: tasks, training, results, aggregation", first(evts, end)))
    points += [
        ("server runner ends the run, clients told", first(evts, "Server runner finished.")),
        ("server app stops", first(evts, "Server app stopped.")),
        ("shutdown grace and cleanup", first(evts, "Good Bye!", "server", last=True)),
        ("the processes exit; the harness reads the run", marks["ran"]),
        ("scoring (the evaluator and the predict process)", marks["scored"]),
    ]
    out, before = [], marks["start"]
    for name, at in points:
        out.append((name, at - before))
        before = at
    return out


def task_time(evts: list[tuple[float, str, str]]) -> float:
    """Wall seconds the clients held a task, summed over sites and tasks (got it -> its result sent)."""
    total = 0.0
    for site in sorted({s for _, s, _ in evts if s.startswith("site-")}):
        got = [t for t, s, line in evts if s == site and "got task assignment" in line]
        sent = [t for t, s, line in evts if s == site and "task result sent" in line]
        total += sum(b - a for a, b in zip(got, sent, strict=False))
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nvflare-waits", action="store_true", help="NVFlare's own waits, not the harness'")
    parser.add_argument("--sandbox", default="on", choices=("on", "off"))
    parser.add_argument("--record", action="store_true")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's directory (its logs) and say where"
    )
    args = parser.parse_args()
    if args.nvflare_waits:
        os.environ[infrastructure.NVFLARE_WAITS_ENV] = "1"
    kept = contextlib.nullcontext(tempfile.mkdtemp(prefix="timeline-")) if args.keep else None
    with kept or tempfile.TemporaryDirectory(prefix="timeline-") as tmp:
        search = scratch_search(Path(tmp), args.benchmark, sandbox=args.sandbox)
        baseline = search.factory.make({}, source="baseline")
        shards = search.shards().directory
        runner = search.runner_factory(
            baseline, search.contract, search.surface_dir, shards, Path(tmp) / "trial", lambda e: None
        )
        cpu0, start = children_cpu(), time.time()
        runner._spec(args.seed, "")  # the export alone (a search's first run of a candidate does it)
        exported, cpu1 = time.time(), children_cpu()
        run = runner.run(args.seed, evaluate=False)
        ran, cpu2 = time.time(), children_cpu()
        runner.evaluate([run])
        scored, cpu3 = time.time(), children_cpu()
        if run.error:
            sys.exit(f"the run failed: {run.error}")
        evts = events(run.directory / "ws" / "trial")
        marks = {"start": start, "exported": exported, "ran": ran, "scored": scored}
        table = phases(evts, search.contract.rounds, marks)
        meter = json.loads((run.directory / "meter.json").read_text())
        imports = re.search(r"imported once \(([\d.]+) s\)", run.log_path.read_text())
    figures = {
        "wall_seconds": round(scored - start, 2),
        "simulation_wall_seconds": round(ran - exported, 2),
        "simulation_wall_per_cpu": round((ran - exported) / (cpu2 - cpu1), 2),
        "export_cpu_seconds": round(cpu1 - cpu0, 2),
        "simulation_cpu_seconds": round(cpu2 - cpu1, 2),
        "scoring_cpu_seconds": round(cpu3 - cpu2, 2),
        "client_flare_cpu_seconds": round(sum(meter["flare_seconds"].values()), 2),
        "trainer_cpu_seconds": round(sum(meter["cpu_seconds"].values()), 2),
        "task_window_cpu_seconds": round(sum(sum(v) for v in meter["task_seconds"].values()), 3),
        "task_wall_seconds": round(task_time(evts), 3),
        "prefork_import_seconds": float(imports[1]) if imports else None,
        "score": run.score,
    }
    if args.keep:
        print(f"the run: {run.directory}")
    waits = "NVFlare's own" if args.nvflare_waits else "the harness' (infrastructure.WAITS)"
    print(f"{args.benchmark}, seed {args.seed}, sandbox {args.sandbox}, waits: {waits}")
    print("| phase | wall s |\n|---|---|")
    for name, seconds in table:
        print(f"| {name} | {seconds:.2f} |")
    print(f"| **total** | **{figures['wall_seconds']:.2f}** |")
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.record:
        label = f"{args.benchmark}-{'nvflare' if args.nvflare_waits else 'harness'}-waits"
        record = Record("timeline", label).write(
            {
                "waits": waits,
                "sandbox": args.sandbox,
                "infra": infrastructure.fingerprint(),
                "phases": [{"phase": n, "wall_seconds": round(s, 3)} for n, s in table],
                **figures,
            }
        )
        print(f"record: {record.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
