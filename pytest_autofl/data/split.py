"""The harness' data: held-out sets it owns and the clients' Dirichlet label-skew shards.

Everything is computed from the contract alone (no downloads, no files the candidate could write), so the
evaluator rebuilds the validation and test sets itself, ``split_sha`` names the split (row indices), and each
shard file is checked against a hash of what the data set says it must contain, before and after every run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pytest_autofl.core.contract import Contract, sha256_of, site_names
from pytest_autofl.data import datasets
from pytest_autofl.data.datasets import Arrays

SHARD_INDEX_KEY = "idx"


@dataclass(frozen=True)
class Split:
    """Row indices into the data set: one array per client plus the two harness-owned held-out sets."""

    clients: dict[str, np.ndarray]
    validation: np.ndarray
    test: np.ndarray

    @property
    def sha(self) -> str:
        return split_sha(self.clients, self.validation, self.test)


def split_sha(clients: dict[str, np.ndarray], validation: np.ndarray, test: np.ndarray) -> str:
    return sha256_of(
        {
            "clients": {name: [int(i) for i in idx] for name, idx in sorted(clients.items())},
            "validation": [int(i) for i in validation],
            "test": [int(i) for i in test],
        }
    )


def load_arrays(contract: Contract) -> Arrays:
    """The contract's data set (``dataset``) as features and labels; each example flattened (images too:
    the model gets ``in_features`` inputs and may reshape them itself)."""
    data = datasets.load(contract)
    return data.x.reshape(len(data.x), -1), data.y


def contract_split(contract: Contract) -> Split:
    """The contract's split of its data set."""
    data = datasets.load(contract)
    return make_split(contract, data.y, data.sites)


def make_split(contract: Contract, labels: np.ndarray, sites: np.ndarray | None = None) -> Split:
    """Stratified held-out sets (the harness'), then the rest over the clients by the contract's partition."""
    holdout, spec = contract.raw["holdout"], contract.raw["split"]
    rng = np.random.default_rng(holdout["seed"])
    validation: list[int] = []
    test: list[int] = []
    pool: list[int] = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = round(len(members) * holdout["validation_fraction"])
        n_test = round(len(members) * holdout["test_fraction"])
        validation += members[:n_val].tolist()
        test += members[n_val : n_val + n_test].tolist()
        pool += members[n_val + n_test :].tolist()
    names = site_names(spec["num_clients"])
    parts = partition(spec, np.array(sorted(pool)), labels, sites, names)
    clients = {name: np.array(sorted(p), dtype=np.int64) for name, p in zip(names, parts, strict=True)}
    return Split(clients, np.array(sorted(validation)), np.array(sorted(test)))


def partition(
    spec: dict, pool: np.ndarray, labels: np.ndarray, sites: np.ndarray | None, names: list[str]
) -> list[list[int]]:
    """The pool's rows per client: ``dirichlet`` label skew, ``iid``, ``quantity`` (client sizes from a
    Dirichlet, labels mixed) or ``site`` (the data's own site column, sites in sorted order)."""
    kind, minimum = spec.get("partition", "dirichlet"), spec["min_samples_per_client"]
    rng = np.random.default_rng(spec["seed"])
    if kind == "site":
        if sites is None:
            raise ValueError("split.partition 'site' needs a data set with a site column ('dataset.site')")
        found = sorted(set(sites[pool].tolist()))
        if len(found) != len(names):
            raise ValueError(
                f"split.num_clients = {len(names)}, but the data has {len(found)} sites: {found}"
            )
        parts = [pool[sites[pool] == site].tolist() for site in found]
        if small := [f"{s} ({len(p)})" for s, p in zip(found, parts, strict=True) if len(p) < minimum]:
            raise ValueError(f"sites with fewer than min_samples_per_client = {minimum} rows: {small}")
        return parts
    for _attempt in range(1000):
        parts = [[] for _ in names]
        if kind == "iid":
            for i, chunk in enumerate(np.array_split(rng.permutation(pool), len(names))):
                parts[i] = chunk.tolist()
        elif kind == "quantity":
            weights = rng.dirichlet([spec["dirichlet_alpha"]] * len(names))
            cuts = (np.cumsum(weights)[:-1] * len(pool)).astype(int)
            for i, chunk in enumerate(np.split(rng.permutation(pool), cuts)):
                parts[i] = chunk.tolist()
        else:
            for cls in np.unique(labels[pool]):
                members = rng.permutation(pool[labels[pool] == cls])
                weights = rng.dirichlet([spec["dirichlet_alpha"]] * len(names))
                cuts = (np.cumsum(weights)[:-1] * len(members)).astype(int)
                for part, chunk in zip(parts, np.split(members, cuts), strict=True):
                    part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= minimum:
            return parts
    raise ValueError(
        f"no {kind} split with >= {minimum} samples per client after 1000 draws; "
        "lower min_samples_per_client, raise dirichlet_alpha or use fewer clients"
    )


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def arrays_sha(arrays: Mapping[str, np.ndarray]) -> str:
    """A hash of arrays' names, dtypes, shapes and contents."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}:".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_sha(path: Path) -> str:
    """``arrays_sha`` of a shard file as it is on disk (no pickles are loaded)."""
    with np.load(path, allow_pickle=False) as shard:
        return arrays_sha({name: shard[name] for name in shard.files})


@dataclass(frozen=True)
class Shards:
    """The clients' shard files (``<site>.npz`` with x, y and the row indices) and what each must contain:
    hashes computed from the data set and the split, never read back from the files."""

    directory: Path
    split: Split
    expected: dict[str, str]  # site -> arrays_sha of its shard

    def stale(self) -> dict[str, str]:
        """Site -> why its shard file is missing, unreadable or not what the data set says it contains."""
        out = {}
        for site, sha in sorted(self.expected.items()):
            path = self.directory / f"{site}.npz"
            try:
                found = file_sha(path)
            except (OSError, ValueError) as exc:
                out[site] = f"{path}: missing or unreadable ({type(exc).__name__}: {exc})"
            else:
                if found != sha:
                    out[site] = (
                        f"{path}: its contents changed (hash {found[:12]}, the data set gives {sha[:12]})"
                    )
        return out

    def problems(self) -> list[str]:
        return list(self.stale().values())


def _shards_of(contract: Contract, root: Path) -> tuple[Shards, dict[str, dict[str, np.ndarray]]]:
    x, y = load_arrays(contract)
    split = contract_split(contract)
    arrays = {name: {"x": x[idx], "y": y[idx], SHARD_INDEX_KEY: idx} for name, idx in split.clients.items()}
    expected = {name: arrays_sha(shard) for name, shard in arrays.items()}
    return Shards(root / f"split-{split.sha[:16]}", split, expected), arrays


def planned_shards(contract: Contract, root: Path) -> Shards:
    """Where the contract's shards go under ``root`` and what they must contain (nothing is written)."""
    return _shards_of(contract, root)[0]


def write_shards(contract: Contract, root: Path) -> Shards:
    """Write every shard whose file is missing or differs from the data set (a shard is never trusted because
    it exists), and return the shards."""
    shards, arrays = _shards_of(contract, root)
    shards.directory.mkdir(parents=True, exist_ok=True)
    for site in shards.stale():
        _atomic_savez(shards.directory / f"{site}.npz", **arrays[site])
    return shards


def heldout(contract: Contract, which: str) -> tuple[np.ndarray, np.ndarray]:
    """The harness-owned validation (selection) or test (final report only) set."""
    x, y = load_arrays(contract)
    split = contract_split(contract)
    idx = {"validation": split.validation, "test": split.test}[which]
    return x[idx], y[idx]
