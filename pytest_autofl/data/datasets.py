"""Data sets: the contract's ``dataset`` names a registered set (``"sklearn.load_digits"``) or describes the
user's own data by ``kind`` (``kinds``: csv, parquet, npz, image_folder, python). Either way the harness gets
the whole set as arrays and splits it itself (``split``). Further sets and kinds come from a ``conftest.py``
(``pytest_autofl_add_datasets``) or the ``pytest_autofl.datasets`` / ``pytest_autofl.dataset_kinds`` entry
point groups; only the pytest process loads data (the evaluator gets the held-out arrays from it).

    "dataset": {"kind": "csv", "path": "data/patients.csv", "label": "outcome",
                "features": ["age", "bmi"], "site": "hospital", "standardize": true}

Labels may be any values: they are encoded as ``0..K-1`` in sorted order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pytest_autofl.core.contract import CONTRACT_FILE, Contract
from pytest_autofl.core.dataset_spec import dataset_file
from pytest_autofl.core.errors import ContractError
from pytest_autofl.core.registry import Registry
from pytest_autofl.data.arrays import DataSet, make
from pytest_autofl.data.kinds import KIND_LOADERS

Arrays = tuple[np.ndarray, np.ndarray]

DATASETS: Registry[Callable[[], DataSet]] = Registry("data set", "pytest_autofl.datasets")
KINDS: Registry[Callable[[dict[str, Any], Path, str], DataSet]] = Registry(
    "data-set kind", "pytest_autofl.dataset_kinds"
)


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


for _kind, _loader in KIND_LOADERS.items():
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
