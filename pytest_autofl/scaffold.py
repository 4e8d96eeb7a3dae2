"""``python -m pytest_autofl new NAME --dataset ...``: a new benchmark from the user's data (and, optionally,
their own Client API training script): the contract, its pin, a task profile and, for a script of their own, a
surface of its own. Everything is validated in a scratch directory first; nothing is left behind on an error."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pytest_autofl.core.contract import CONTRACT_FILE, PIN_FILE, load_contract
from pytest_autofl.core.errors import ContractError
from pytest_autofl.core.metrics import METRICS, metric_problem
from pytest_autofl.core.surface_rules import CHECKS, CLIENT_SCRIPT, Violation, check_surface
from pytest_autofl.data import datasets
from pytest_autofl.data.split import contract_split

# What a new contract starts from (the digits benchmark's budget and statistics; edit before the first search).
TEMPLATE: dict[str, Any] = {
    "holdout": {"validation_fraction": 0.2, "test_fraction": 0.2, "seed": 20261202},
    "budget": {
        "rounds": 5,
        "local_epochs": 1,
        "max_local_steps": 20,
        "batch_size": 32,
        "max_model_params": 20000,
        "wall_clock_seconds": 300,
    },
    "seeds": [0, 1, 2, 3, 4, 5],
    "min_delta": 0.005,
    "statistics": {
        "min_seeds": 3,
        "confidence": 0.95,
        "noise_k": 0.5,
        "confirm_seeds_first": 1000,
        "confirm_seeds_count": 60,
        "confirm_per_keep": 3,
        "cheaper_ratio": 0.8,
        "rerun_tolerance": 1e-06,
    },
}


def contract_for(name: str, dataset: Any, metric: str, split: dict[str, Any]) -> dict[str, Any]:
    if metric not in METRICS:
        raise ContractError(f"--metric {metric!r} is not one of {sorted(METRICS)}")
    return {
        "name": name,
        "description": f"{name}: a benchmark made by `python -m pytest_autofl new`",
        "dataset": dataset,
        **TEMPLATE,
        "split": {"seed": 0, "min_samples_per_client": 20, **split},
        "metric": {"name": metric, "split": "validation", "direction": METRICS[metric].direction},
    }


def _profile(name: str, contract_dir: Path, benchmarks: Path) -> str:
    contract = load_contract(benchmarks, name)
    data = datasets.load(contract)
    if why := metric_problem(
        contract.raw["metric"]["name"], contract.raw["metric"]["direction"], data.num_classes
    ):
        raise ContractError(f"{contract_dir / CONTRACT_FILE}: {why}")
    split = contract_split(contract)
    sizes = ", ".join(f"{site} {len(rows)}" for site, rows in split.clients.items())
    return (
        f"# Task profile: {name}\n\n"
        f"{len(data.y)} rows, input shape {data.input_shape}, {data.num_classes} classes ({', '.join(data.classes)}).\n"
        f"Held out by the harness: {len(split.validation)} validation (selection) and {len(split.test)} test rows.\n"
        f"Clients ({contract.raw['split'].get('partition', 'dirichlet')}): {sizes}.\n"
        f"Metric: {contract.raw['metric']['name']} ({contract.raw['metric']['direction']}).\n\n"
        "Say here what question this benchmark answers and what is known to work (the LLM proposer reads it).\n"
    )


def new_benchmark(
    root: Path,
    benchmarks_dir: Path,
    surface_dir: Path,
    name: str,
    raw: dict[str, Any],
    client_script: Path | None,
) -> tuple[Path, list[Violation]]:
    """Write ``<benchmarks_dir>/<name>/`` (and ``<root>/surfaces-<name>/`` for a script of the user's own); the
    surface rules the script breaks are returned (it is written anyway, to be fixed in place)."""
    target = benchmarks_dir / name
    if target.exists():
        raise ContractError(f"{target} exists; choose another name or remove it")
    surface = root / f"surfaces-{name}"
    if client_script is not None:
        if surface.exists():
            raise ContractError(f"{surface} exists; remove it or choose another name")
        raw = {**raw, "surface": surface.relative_to(root).as_posix()}
    with tempfile.TemporaryDirectory(
        dir=benchmarks_dir.parent if benchmarks_dir.parent.exists() else None
    ) as tmp:
        scratch = Path(tmp) / name
        scratch.mkdir()
        if (
            isinstance(raw["dataset"], dict) and "path" in raw["dataset"]
        ):  # relative to the contract's directory
            path = Path(raw["dataset"]["path"]).expanduser().resolve()
            raw = {**raw, "dataset": {**raw["dataset"], "path": os.path.relpath(path, target)}}
        (scratch / CONTRACT_FILE).write_text(json.dumps(raw, indent=2) + "\n")
        (scratch / "profile.md").write_text(_profile(name, scratch, Path(tmp)))
        (scratch / PIN_FILE).write_text(load_contract(Path(tmp), name).sha + "\n")
        benchmarks_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(scratch), target)
    violations: list[Violation] = []
    if client_script is not None:
        surface.mkdir()
        for item in [*CHECKS, "mutation_schema.yaml"]:
            shutil.copy2(surface_dir / item, surface / item)
        shutil.copy2(client_script, surface / CLIENT_SCRIPT)
        violations = check_surface(surface)
    return target, violations
