"""Time bare NVFlare SimEnv runs of the benchmark's job, without the plugin, for comparison.

    python benchmarks/bare_simenv.py [--benchmark digits] [--seed 0] [--interval 0.1]

Same recipe, model, client script and data as a pytest-autofl run, but run with ``recipe.execute(SimEnv(...))``
and NVFlare's default settings (2 s task_request_interval, no audit filter, no process-tree guard, no
evaluator). Prints the wall-clock seconds. ``benchmarks/throughput.py`` runs this script once per (candidate, seed) as its reference loop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_autofl.core.contract import Contract, load_contract  # noqa: E402
from pytest_autofl.core.schema import load_schema  # noqa: E402
from pytest_autofl.data.datasets import task_of  # noqa: E402
from pytest_autofl.data.split import write_shards  # noqa: E402
from pytest_autofl.run.flare_job import build_and_run  # noqa: E402
from pytest_autofl.run.seedrun import JOB_NAME  # noqa: E402
from pytest_autofl.run.surface import SURFACE_PACKAGE, prepare_surface  # noqa: E402


def bare_run(contract: Contract, knobs: dict[str, Any], seed: int, interval: float | None = None) -> float:
    """One default SimEnv run of (knobs, seed) in a temp dir; its wall-clock seconds."""
    with tempfile.TemporaryDirectory(prefix="bare-simenv-") as tmp:
        work = Path(tmp)
        shard_dir = write_shards(contract, work / "data").directory
        surface_parent = prepare_surface(ROOT / "surfaces", work)
        budget = contract.budget
        client_config = work / "client.json"
        client_config.write_text(
            json.dumps(
                {
                    "seed": seed,
                    "knobs": knobs,
                    "data_dir": str(shard_dir),
                    "local_epochs": budget["local_epochs"],
                    "max_local_steps": budget["max_local_steps"],
                    "batch_size": budget["batch_size"],
                    "task": task_of(contract),
                }
            )
        )
        spec = {
            "surface_parent": str(surface_parent),
            "knobs": knobs,
            "seed": seed,
            "job_name": JOB_NAME,
            "num_clients": contract.num_clients,
            "rounds": contract.rounds,
            "train_script": str(surface_parent / SURFACE_PACKAGE / "client_train.py"),
            "client_config": str(client_config),
            # NVFlare's defaults unless an interval is asked for (``run/infrastructure.py`` holds the harness')
            "flare_server_config": None
            if interval is None
            else {"server": {"task_request_interval": interval}},
            "audit_path": None,
            "workspace_root": str(work / "ws"),
            "task": task_of(contract),
        }
        # The simulator's worker processes import the surface package too.
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(surface_parent), str(ROOT), old or ""])
        try:
            started = time.monotonic()
            build_and_run(spec)
            return time.monotonic() - started
        finally:
            if old is None:
                os.environ.pop("PYTHONPATH")
            else:
                os.environ["PYTHONPATH"] = old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--interval", type=float, default=None, help="task_request_interval (default: NVFlare's)"
    )
    parser.add_argument("--knobs", default=None, help="a candidate's knobs as JSON (default: the schema's)")
    args = parser.parse_args()
    contract = load_contract(ROOT / "benchmarks", args.benchmark)
    knobs = json.loads(args.knobs) if args.knobs else load_schema(ROOT / "surfaces").defaults()
    seconds = bare_run(contract, knobs, args.seed, args.interval)
    interval = "default (2 s)" if args.interval is None else f"{args.interval} s"
    print(
        f"BARE_SIMENV benchmark={args.benchmark} clients={contract.num_clients} rounds={contract.rounds} "
        f"interval={interval} seconds={seconds:.1f}"
    )


if __name__ == "__main__":
    main()
