"""The contract's fields: each required and optional field's type, rule and (optional ones) default, and the
checks across fields. ``contract.load_contract`` runs them; a violation names the file and the field."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_autofl.core.errors import ContractError
from pytest_autofl.core.metrics import METRICS, metric_problem

# field -> (type, predicate, description) for the checks in `validate`.
REQUIRED: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "dataset": (
        (str, dict),
        lambda v: bool(v.strip()) if isinstance(v, str) else isinstance(v.get("kind"), str),
        "must name a registered data set ('sklearn.load_digits') or be a mapping with a 'kind' (csv, parquet, "
        "npz, image_folder, python, or one a conftest.py registers)",
    ),
    "holdout.validation_fraction": ((int, float), lambda v: 0 < v < 0.5, "must be in (0, 0.5)"),
    "holdout.test_fraction": ((int, float), lambda v: 0 < v < 0.5, "must be in (0, 0.5)"),
    "holdout.seed": (int, lambda v: v >= 0, "must be >= 0"),
    "split.num_clients": (int, lambda v: 1 <= v <= 16, "must be in [1, 16]"),
    "split.seed": (int, lambda v: v >= 0, "must be >= 0"),
    "split.min_samples_per_client": (int, lambda v: v >= 1, "must be >= 1"),
    "budget.rounds": (int, lambda v: v >= 1, "must be >= 1"),
    "budget.local_epochs": (int, lambda v: v >= 1, "must be >= 1"),
    "budget.max_local_steps": (int, lambda v: v >= 1, "must be >= 1"),
    "budget.batch_size": (int, lambda v: v >= 1, "must be >= 1"),
    "budget.max_model_params": (int, lambda v: v >= 1, "must be >= 1"),
    "budget.wall_clock_seconds": ((int, float), lambda v: v > 0, "must be > 0"),
    "seeds": (
        list,
        lambda v: len(v) >= 1 and all(isinstance(s, int) for s in v) and len(set(v)) == len(v),
        "must be a non-empty list of distinct integers",
    ),
    "metric.name": (str, lambda v: v in METRICS, f"must be one of {sorted(METRICS)}"),
    "metric.split": (str, lambda v: v == "validation", "must be 'validation' (the test split never selects)"),
    "metric.direction": (str, lambda v: v in ("max", "min"), "must be 'max' or 'min'"),
    "min_delta": ((int, float), lambda v: v >= 0 and math.isfinite(v), "must be a finite number >= 0"),
    "statistics.min_seeds": (int, lambda v: v >= 1, "must be >= 1"),
    "statistics.confidence": ((int, float), lambda v: 0.5 < v < 1, "must be in (0.5, 1)"),
    "statistics.noise_k": ((int, float), lambda v: v >= 0, "must be >= 0"),
    "statistics.confirm_seeds_first": (int, lambda v: v >= 0, "must be >= 0"),
    "statistics.confirm_seeds_count": (int, lambda v: v >= 0, "must be >= 0"),
    "statistics.confirm_per_keep": (int, lambda v: v >= 1, "must be >= 1"),
    "statistics.cheaper_ratio": ((int, float), lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "statistics.rerun_tolerance": ((int, float), lambda v: v >= 0, "must be >= 0"),
}


# How the clients' rows are drawn (data.split): label skew, IID, skewed client sizes, or the data's own sites.
PARTITIONS = ("dirichlet", "iid", "quantity", "site")

# Fields a contract may leave out: (types, check, rule, the value when absent).
OPTIONAL: dict[str, tuple[Any, Callable[[Any], bool], str, Any]] = {
    "split.partition": (str, lambda v: v in PARTITIONS, f"must be one of {list(PARTITIONS)}", "dirichlet"),
    "split.dirichlet_alpha": ((int, float), lambda v: v > 0, "must be > 0", None),
    "surface": (
        str,
        lambda v: bool(v) and not Path(v).is_absolute() and ".." not in Path(v).parts,
        "must be a directory relative to the project root, e.g. 'surfaces-tabular'",
        None,
    ),
    "budget.max_cpu_ratio": (
        (int, float),
        lambda v: v >= 1 and math.isfinite(v),
        "must be a number >= 1",
        1.3,  # the trainers' CPU per window: benchmarks/results/compute-bound/2026-12-08-567b5fbebca3-digits-smoke.txt
        # (32 honest code changes at most 1.15x their twins; 2x the steps 1.42x-1.64x, 1.48x in a first task alone)
    ),
    # What one simulation (its whole process tree) may take of the machine: memory (proportional set size, so
    # pages a prefork zygote shares count once), processes, and disk in its trial directory. Past a limit the
    # tree is stopped and the candidate is a crash naming the limit.
    "budget.max_memory_mb": (int, lambda v: v >= 256, "must be an integer >= 256 (MiB)", 4096),
    "budget.max_processes": (int, lambda v: v >= 8, "must be an integer >= 8", 64),
    "budget.max_disk_mb": (int, lambda v: v >= 16, "must be an integer >= 16 (MiB)", 2048),
    # The screening cascade: every candidate first runs one seed at fewer rounds; only one within ``margin``
    # (metric units) of the incumbent's screen goes on to the contract's seeds. No block: no screen.
    "screen.rounds": (int, lambda v: v >= 1, "must be >= 1", None),
    "screen.seed": (int, lambda v: v >= 0, "must be >= 0", None),
    "screen.margin": (
        (int, float),
        lambda v: v >= 0 and math.isfinite(v),
        "must be a finite number >= 0",
        None,
    ),
}


def _get(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def validate(raw: Any, where: str) -> None:
    if not isinstance(raw, dict):
        raise ContractError(f"{where}: the contract must be a JSON object")
    for dotted, (types, ok, rule) in REQUIRED.items():
        try:
            value = _get(raw, dotted)
        except KeyError:
            raise ContractError(f"{where}: missing field '{dotted}'") from None
        if isinstance(value, bool) or not isinstance(value, types) or not ok(value):
            raise ContractError(f"{where}: field '{dotted}' = {value!r} {rule}")
    for dotted, (types, ok, rule, _default) in OPTIONAL.items():
        with contextlib.suppress(KeyError):
            value = _get(raw, dotted)
            if isinstance(value, bool) or not isinstance(value, types) or not ok(value):
                raise ContractError(f"{where}: field '{dotted}' = {value!r} {rule}")
    st = raw["statistics"]
    if st["min_seeds"] > len(raw["seeds"]):
        raise ContractError(
            f"{where}: statistics.min_seeds = {st['min_seeds']} exceeds the {len(raw['seeds'])} seeds"
        )
    confirm = range(st["confirm_seeds_first"], st["confirm_seeds_first"] + st["confirm_seeds_count"])
    if set(confirm) & set(raw["seeds"]):
        raise ContractError(f"{where}: confirmation seeds must be fresh: they overlap 'seeds'")
    split = raw["split"]
    if split.get("partition", "dirichlet") in ("dirichlet", "quantity") and "dirichlet_alpha" not in split:
        raise ContractError(
            f"{where}: missing field 'split.dirichlet_alpha' (the {split.get('partition', 'dirichlet')} partition's skew)"
        )
    if why := metric_problem(raw["metric"]["name"], raw["metric"]["direction"]):
        raise ContractError(f"{where}: field 'metric': {why}")
    if "screen" in raw:
        _check_screen(raw, where)
    if raw["holdout"]["validation_fraction"] + raw["holdout"]["test_fraction"] >= 0.8:
        raise ContractError(f"{where}: validation_fraction + test_fraction must leave >= 20% for the clients")


def _check_screen(raw: dict[str, Any], where: str) -> None:
    screen = raw["screen"]
    if not isinstance(screen, dict) or sorted(screen) != ["margin", "rounds", "seed"]:
        raise ContractError(
            f"{where}: field 'screen' must be a mapping of exactly 'rounds', 'seed' and 'margin'"
        )
    if screen["rounds"] >= raw["budget"]["rounds"]:
        raise ContractError(
            f"{where}: field 'screen.rounds' = {screen['rounds']} must be below budget.rounds = "
            f"{raw['budget']['rounds']} (a screen is cheaper than the contract)"
        )
    if screen["seed"] in raw["seeds"] or screen["seed"] in range(
        raw["statistics"]["confirm_seeds_first"],
        raw["statistics"]["confirm_seeds_first"] + raw["statistics"]["confirm_seeds_count"],
    ):
        raise ContractError(
            f"{where}: field 'screen.seed' must be fresh: not a selection or confirmation seed"
        )


def partition_label(split: dict[str, Any]) -> str:
    """The budget column's partition part (``alpha=0.3`` for today's Dirichlet split, as earlier rows say)."""
    kind = split.get("partition", "dirichlet")
    alpha = f"alpha={split['dirichlet_alpha']}" if "dirichlet_alpha" in split else ""
    return alpha if kind == "dirichlet" else f"partition={kind}" + (f",{alpha}" if kind == "quantity" else "")
