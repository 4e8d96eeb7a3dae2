"""The benchmark contract: everything that must stay equal between candidates, with a content hash.

A contract lives in ``<benchmarks>/<name>/contract.json`` next to ``contract.sha256`` (the pinned hash) and
``profile.md`` (the task profile people and proposers read). Changing the contract changes ``contract_sha``;
``--autofl-check`` rejects a contract whose hash differs from the pin, so a change is always a visible act.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_autofl.core.dataset_spec import data_identity
from pytest_autofl.core.errors import ContractError
from pytest_autofl.core.metrics import METRICS, metric_problem

CONTRACT_FILE = "contract.json"
PIN_FILE = "contract.sha256"
PROFILE_FILE = "profile.md"

# field -> (type, predicate, description) for the checks in `_validate`.
_REQUIRED: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "dataset": (
        (str, dict),
        lambda v: bool(v.strip()) if isinstance(v, str) else isinstance(v.get("kind"), str),
        "must name a registered data set ('sklearn.load_digits') or be a mapping with a 'kind' (csv, parquet, "
        "npz, python)",
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
_OPTIONAL: dict[str, tuple[Any, Callable[[Any], bool], str, Any]] = {
    "split.partition": (str, lambda v: v in PARTITIONS, f"must be one of {list(PARTITIONS)}", "dirichlet"),
    "split.dirichlet_alpha": ((int, float), lambda v: v > 0, "must be > 0", None),
    "budget.max_cpu_ratio": (
        (int, float),
        lambda v: v >= 1 and math.isfinite(v),
        "must be a number >= 1",
        2.5,
    ),
}


def canonical_json(data: Any) -> str:
    """The one serialization every hash in this project is taken over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_of(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _get(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _validate(raw: Any, where: str) -> None:
    if not isinstance(raw, dict):
        raise ContractError(f"{where}: the contract must be a JSON object")
    for dotted, (types, ok, rule) in _REQUIRED.items():
        try:
            value = _get(raw, dotted)
        except KeyError:
            raise ContractError(f"{where}: missing field '{dotted}'") from None
        if isinstance(value, bool) or not isinstance(value, types) or not ok(value):
            raise ContractError(f"{where}: field '{dotted}' = {value!r} {rule}")
    for dotted, (types, ok, rule, _default) in _OPTIONAL.items():
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
    if raw["holdout"]["validation_fraction"] + raw["holdout"]["test_fraction"] >= 0.8:
        raise ContractError(f"{where}: validation_fraction + test_fraction must leave >= 20% for the clients")


def _partition(split: dict[str, Any]) -> str:
    """The budget column's partition part (``alpha=0.3`` for today's Dirichlet split, as earlier rows say)."""
    kind = split.get("partition", "dirichlet")
    alpha = f"alpha={split['dirichlet_alpha']}" if "dirichlet_alpha" in split else ""
    return alpha if kind == "dirichlet" else f"partition={kind}" + (f",{alpha}" if kind == "quantity" else "")


@dataclass(frozen=True)
class Statistics:
    """The contract's ``statistics`` block: how verdicts are reached (read here only)."""

    min_seeds: int
    confidence: float
    noise_k: float
    confirm_seeds: tuple[
        int, ...
    ]  # the pool of fresh seeds: never used for selection, each by one confirmation
    confirm_per_keep: int
    cheaper_ratio: float
    rerun_tolerance: float

    @property
    def alpha(self) -> float:
        return 1 - self.confidence


@dataclass(frozen=True)
class Contract:
    """A loaded, validated benchmark contract. ``raw`` is exactly what was hashed."""

    name: str
    raw: dict[str, Any]
    directory: Path
    data_identity: str = ""  # the hash of the data files (or loader source) the dataset block names

    @property
    def sha(self) -> str:
        """What a campaign is: the contract, and the data its files hold (a changed file is a new campaign)."""
        if not self.data_identity:
            return sha256_of(self.raw)
        return sha256_of({"contract": self.raw, "data": self.data_identity})

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.raw["seeds"])

    @property
    def budget(self) -> dict[str, Any]:
        return dict(self.raw["budget"])

    @property
    def split(self) -> dict[str, Any]:
        return dict(self.raw["split"])

    @property
    def num_clients(self) -> int:
        return int(self.raw["split"]["num_clients"])

    @property
    def sites(self) -> list[str]:
        return site_names(self.num_clients)

    @property
    def rounds(self) -> int:
        return int(self.raw["budget"]["rounds"])

    @property
    def max_cpu_ratio(self) -> float:
        """How many times the baseline's measured CPU seconds per run a candidate may use."""
        return float(self.raw["budget"].get("max_cpu_ratio", _OPTIONAL["budget.max_cpu_ratio"][3]))

    @property
    def min_delta(self) -> float:
        return float(self.raw["min_delta"])

    @property
    def statistics(self) -> Statistics:
        st = self.raw["statistics"]
        return Statistics(
            min_seeds=int(st["min_seeds"]),
            confidence=float(st["confidence"]),
            noise_k=float(st["noise_k"]),
            confirm_seeds=tuple(
                range(st["confirm_seeds_first"], st["confirm_seeds_first"] + st["confirm_seeds_count"])
            ),
            confirm_per_keep=int(st["confirm_per_keep"]),
            cheaper_ratio=float(st["cheaper_ratio"]),
            rerun_tolerance=float(st["rerun_tolerance"]),
        )

    @property
    def min_seeds(self) -> int:
        return self.statistics.min_seeds

    @property
    def confirm_seeds(self) -> tuple[int, ...]:
        return self.statistics.confirm_seeds

    def threshold(self, noise: float) -> float:
        """The smallest gain that counts: max(min_delta, noise_k x noise floor)."""
        return max(self.min_delta, self.statistics.noise_k * noise)

    @property
    def higher_is_better(self) -> bool:
        return self.raw["metric"]["direction"] == "max"

    @property
    def profile_path(self) -> Path:
        return self.directory / PROFILE_FILE

    def budget_string(self) -> str:
        """The ledger's ``budget`` column: every fixed training knob, compact and readable."""
        b, s = self.raw["budget"], self.raw["split"]
        return (
            f"clients={s['num_clients']},{_partition(s)},rounds={b['rounds']},"
            f"local_epochs={b['local_epochs']},max_local_steps={b['max_local_steps']},"
            f"batch_size={b['batch_size']},max_params={b['max_model_params']},"
            f"wall_clock_s={b['wall_clock_seconds']}"
        )


def site_names(num_clients: int) -> list[str]:
    """The clients' names, as NVFlare's SimEnv names them: site-1 .. site-N."""
    return [f"site-{i}" for i in range(1, num_clients + 1)]


def list_benchmarks(benchmarks_dir: Path) -> list[str]:
    if not benchmarks_dir.is_dir():
        return []
    return sorted(p.name for p in benchmarks_dir.iterdir() if (p / CONTRACT_FILE).is_file())


def load_contract(benchmarks_dir: Path, name: str) -> Contract:
    """Load and validate ``<benchmarks_dir>/<name>/contract.json``."""
    directory = benchmarks_dir / name
    path = directory / CONTRACT_FILE
    if not path.is_file():
        known = ", ".join(list_benchmarks(benchmarks_dir)) or "none"
        raise ContractError(f"unknown benchmark '{name}': no {path} (known benchmarks: {known})")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: cannot read the contract: {exc}") from None
    _validate(raw, str(path))
    if raw.get("name") != name:
        raise ContractError(
            f"{path}: field 'name' = {raw.get('name')!r} must equal the directory name {name!r}"
        )
    return Contract(
        name=name, raw=raw, directory=directory, data_identity=data_identity(raw["dataset"], directory)
    )


def check_pin(contract: Contract) -> None:
    """Raise unless ``contract.sha256`` pins exactly this contract's hash."""
    pin = contract.directory / PIN_FILE
    if not pin.is_file():
        raise ContractError(f"{pin} is missing: pin the contract hash with `{contract.sha}`")
    pinned = pin.read_text().split()[0] if pin.read_text().split() else ""
    if pinned != contract.sha:
        raise ContractError(
            f"contract '{contract.name}' was changed: {contract.directory / CONTRACT_FILE} hashes to "
            f"{contract.sha[:12]}, but {pin} pins {pinned[:12] or '(empty)'}. A changed contract starts a new "
            f"campaign; if that is intended, write the new hash into {pin} in its own commit."
        )
    if not contract.profile_path.is_file():
        raise ContractError(f"{contract.profile_path} is missing: every benchmark needs a task profile")
