"""The benchmark contract: everything that must stay equal between candidates, with a content hash.

A contract lives in ``<benchmarks>/<name>/contract.json`` next to ``contract.sha256`` (the pinned hash) and
``profile.md`` (the task profile people and proposers read). Changing the contract changes ``contract_sha``;
``--autofl-check`` rejects a contract whose hash differs from the pin, so a change is always a visible act.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_autofl.core.contract_fields import OPTIONAL, partition_label, validate
from pytest_autofl.core.dataset_spec import data_identity
from pytest_autofl.core.errors import ContractError

CONTRACT_FILE = "contract.json"
PIN_FILE = "contract.sha256"
PROFILE_FILE = "profile.md"


def canonical_json(data: Any) -> str:
    """The one serialization every hash in this project is taken over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_of(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


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
class Limits:
    """What one simulation's process tree may use: memory (MiB, proportional set size), processes, and disk
    in its trial directory (MiB). Defaults fit a 3-client digits run (~0.5 GiB, 13 processes) many times."""

    memory_mb: int
    processes: int
    disk_mb: int


@dataclass(frozen=True)
class Screen:
    """The contract's screening stage: one ``seed`` at ``rounds`` rounds; a candidate whose screen scores more
    than ``margin`` worse than the incumbent's is not run on the contract's seeds."""

    rounds: int
    seed: int
    margin: float


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

    def surface_dir(self, rootdir: Path, default: Path) -> Path:
        """The benchmark's own mutation surface (``surface``, relative to the project root), else ``default``."""
        return rootdir / self.raw["surface"] if self.raw.get("surface") else default

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
        return float(self.raw["budget"].get("max_cpu_ratio", OPTIONAL["budget.max_cpu_ratio"][3]))

    @property
    def limits(self) -> Limits:
        budget = self.raw["budget"]
        value = {
            k: budget.get(k, OPTIONAL[f"budget.{k}"][3])
            for k in ("max_memory_mb", "max_processes", "max_disk_mb")
        }
        return Limits(value["max_memory_mb"], value["max_processes"], value["max_disk_mb"])

    @property
    def screen(self) -> Screen | None:
        """The screening stage (``screen``), if the contract names one."""
        raw = self.raw.get("screen")
        return Screen(int(raw["rounds"]), int(raw["seed"]), float(raw["margin"])) if raw else None

    def screened(self) -> Contract:
        """The screen as a contract of its own (its own hash: its runs never mix with the contract's): the
        screen's rounds and its one seed, nothing else changed."""
        screen = self.screen
        assert screen is not None
        raw = {k: v for k, v in self.raw.items() if k != "screen"}
        raw["budget"] = {**raw["budget"], "rounds": screen.rounds}
        raw["seeds"] = [screen.seed]
        raw["statistics"] = {**raw["statistics"], "min_seeds": 1}
        return Contract(self.name, raw, self.directory, self.data_identity)

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
            f"clients={s['num_clients']},{partition_label(s)},rounds={b['rounds']},"
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
    validate(raw, str(path))
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
