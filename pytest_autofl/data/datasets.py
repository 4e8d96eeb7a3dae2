"""Data sets: the contract's ``dataset`` names a bundled set (``"sklearn.load_digits"``) or describes the user's
own data by ``kind`` (csv, parquet, npz, python). Either way the harness gets the whole set as arrays and splits
it itself (``split``). Loaders are looked up in every process that needs the data (the pytest process and the
evaluator), so a further named set or kind is registered by this package or through the
``pytest_autofl.datasets`` / ``pytest_autofl.dataset_kinds`` entry point groups, which every process sees.

    "dataset": {"kind": "csv", "path": "data/patients.csv", "label": "outcome",
                "features": ["age", "bmi"], "site": "hospital", "standardize": true}

Relative paths are relative to the contract's directory. Labels may be any values: they are encoded as
``0..K-1`` in sorted order.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pytest_autofl.core.contract import CONTRACT_FILE, Contract
from pytest_autofl.core.dataset_spec import dataset_file
from pytest_autofl.core.errors import ContractError
from pytest_autofl.core.registry import Registry

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DataSet:
    x: np.ndarray  # float32, one row per example: (n, features) or (n, *image shape)
    y: np.ndarray  # int64 class indices 0..K-1
    classes: tuple[str, ...]  # the label each index stands for
    sites: np.ndarray | None = None  # the natural partition: a site name per row, if the data has one

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS: Registry[Callable[[], DataSet]] = Registry("data set", "pytest_autofl.datasets")
KINDS: Registry[Callable[[dict[str, Any], Path, str], DataSet]] = Registry(
    "data-set kind", "pytest_autofl.dataset_kinds"
)


def make(
    x: Any, y: Any, sites: Any = None, where: str = "the data set", standardize: bool = False
) -> DataSet:
    """A DataSet from raw arrays: float32 features without NaN or inf, labels encoded in sorted order."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2 or len(x) != len(y) or len(y) == 0:
        raise ContractError(f"{where}: expected features (n, ...) and n labels, got {x.shape} and {y.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ContractError(f"{where}: features must be numbers, got {x.dtype}")
    x = x.astype(np.float32)
    if bad := int((~np.isfinite(x)).any(axis=tuple(range(1, x.ndim))).sum()):
        raise ContractError(
            f"{where}: {bad} row(s) have NaN or infinite features; clean or impute them first"
        )
    if standardize:
        x = ((x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)).astype(np.float32)
    values, codes = np.unique(y, return_inverse=True)
    if len(values) < 2:
        raise ContractError(f"{where}: the labels have a single class ({values.tolist()})")
    sites_arr = None if sites is None else np.asarray(sites).astype(str)
    return DataSet(x, codes.astype(np.int64), tuple(str(v) for v in values), sites_arr)


def _bundled(loader: str, scale: float = 1.0, standardize: bool = False) -> Callable[[], DataSet]:
    def load() -> DataSet:
        import sklearn.datasets

        bunch: Any = getattr(sklearn.datasets, loader)()
        return make(bunch.data / scale, bunch.target, where=f"sklearn.{loader}", standardize=standardize)

    load.__doc__ = f"scikit-learn's bundled {loader.removeprefix('load_')}"
    return load


DATASETS.register("sklearn.load_digits", _bundled("load_digits", scale=16.0))  # 8x8 images in [0, 1]
DATASETS.register("sklearn.load_breast_cancer", _bundled("load_breast_cancer", standardize=True))
DATASETS.register("sklearn.load_wine", _bundled("load_wine", standardize=True))
DATASETS.register("sklearn.load_iris", _bundled("load_iris", standardize=True))


def _table(frame: Any, spec: dict[str, Any], where: str) -> DataSet:
    label, site = spec.get("label"), spec.get("site")
    if not isinstance(label, str):
        raise ContractError(f"{where}: 'dataset.label' must name the label column")
    features = spec.get("features") or [c for c in frame.columns if c not in (label, site)]
    missing = [c for c in [label, *([site] if site else []), *features] if c not in frame.columns]
    if missing:
        raise ContractError(f"{where}: no column(s) {missing}; the file has {list(frame.columns)}")
    numeric = frame[features].select_dtypes("number").columns
    if other := [c for c in features if c not in numeric]:
        raise ContractError(
            f"{where}: feature column(s) {other} are not numeric; encode them or leave them out"
        )
    if nan := [c for c in features if frame[c].isna().any()]:
        raise ContractError(
            f"{where}: feature column(s) {nan} have missing values; clean or impute them first"
        )
    return make(
        frame[features].to_numpy(),
        frame[label].to_numpy(),
        frame[site].to_numpy() if site else None,
        where,
        bool(spec.get("standardize", False)),
    )


def _csv(spec: dict[str, Any], directory: Path, where: str) -> DataSet:
    import pandas as pd

    return _table(pd.read_csv(dataset_file(spec, directory)), spec, where)


def _parquet(spec: dict[str, Any], directory: Path, where: str) -> DataSet:
    import pandas as pd

    try:
        frame = pd.read_parquet(dataset_file(spec, directory))
    except ImportError:
        raise ContractError(
            f"{where}: reading Parquet needs pyarrow: pip install 'pytest-autofl[parquet]'"
        ) from None
    return _table(frame, spec, where)


def _npz(spec: dict[str, Any], directory: Path, where: str) -> DataSet:
    with np.load(dataset_file(spec, directory), allow_pickle=False) as data:
        if missing := [k for k in ("x", "y") if k not in data.files]:
            raise ContractError(f"{where}: the file has no array(s) {missing} (it has {data.files})")
        sites = data["site"] if "site" in data.files else None
        return make(data["x"], data["y"], sites, where, bool(spec.get("standardize", False)))


def _python(spec: dict[str, Any], directory: Path, where: str) -> DataSet:
    """``"loader": "package.module:function"``: the function returns (x, y) or (x, y, sites) as arrays."""
    module, _, function = str(spec.get("loader", "")).partition(":")
    try:
        loaded = getattr(importlib.import_module(module), function)()
    except Exception as exc:  # the user's loader: named, with what it raised
        raise ContractError(
            f"{where}: the loader {spec.get('loader')!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(loaded, tuple) or len(loaded) not in (2, 3):
        raise ContractError(f"{where}: the loader must return (x, y) or (x, y, sites) arrays")
    x, y, sites = (*loaded, None)[:3]
    return make(x, y, sites, where, bool(spec.get("standardize", False)))


for _kind, _loader in (("csv", _csv), ("parquet", _parquet), ("npz", _npz), ("python", _python)):
    KINDS.register(_kind, _loader)


def check(contract: Contract) -> None:
    """An unknown data set or kind is an error before anything runs (the data itself loads later)."""
    spec = contract.raw["dataset"]
    if isinstance(spec, str):
        DATASETS.get(spec)
    else:
        KINDS.get(str(spec["kind"]))


def data_files(spec: Any, directory: Path) -> list[Path]:
    """Where the data set's own files are on this machine: hidden from every candidate process (which may
    see its shard only)."""
    if isinstance(spec, dict) and "path" in spec:
        return [dataset_file(spec, directory)]
    if isinstance(spec, str) and spec.startswith("sklearn."):
        import sklearn.datasets

        package = Path(sklearn.datasets.__file__).parent
        return [package / "data", package / "images", Path(sklearn.datasets.get_data_home())]
    return []


@lru_cache(maxsize=4)
def _load(sha: str, directory: Path, spec_json: str) -> DataSet:
    spec = json.loads(spec_json)
    where = f"{directory / CONTRACT_FILE}: dataset"
    if isinstance(spec, str):
        data = DATASETS.get(spec)()
    else:
        loader = KINDS.get(spec["kind"])
        try:
            data = loader(spec, directory, where)
        except ContractError:
            raise
        except Exception as exc:  # a file the reader refuses: named, never a traceback
            raise ContractError(
                f"{where}: cannot read {spec.get('path', '')}: {type(exc).__name__}: {exc}"
            ) from None
    for array in (data.x, data.y):
        array.setflags(write=False)
    return data


def task_of(contract: Contract) -> dict[str, int]:
    """The data's shape as the surface's model is built with: ``Net(arch, seed, in_features, num_classes)``."""
    data = load(contract)
    return {"in_features": int(np.prod(data.input_shape)), "num_classes": data.num_classes}


def load(contract: Contract) -> DataSet:
    """The contract's data set, loaded once per process (read-only arrays: every caller shares them)."""
    return _load(contract.sha, contract.directory, json.dumps(contract.raw["dataset"], sort_keys=True))
