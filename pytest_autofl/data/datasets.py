"""The data-set registry: the contract's ``dataset`` names a loader that returns the whole data set as arrays
``(x float32, y int64)``; the harness splits it (``split``). Loaders are looked up by name in every process
that needs the data (the pytest process and the evaluator), so a further kind is registered by this package
or through the ``pytest_autofl.datasets`` entry point group, which every process sees.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pytest_autofl.core.registry import Registry

Arrays = tuple[np.ndarray, np.ndarray]
DATASETS: Registry[Callable[[], Arrays]] = Registry("data set", "pytest_autofl.datasets")


def sklearn_digits() -> Arrays:
    """scikit-learn's bundled digits (1,797 8x8 images), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch: Any = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


DATASETS.register("sklearn.load_digits", sklearn_digits)


def data_files(name: str) -> list[Path]:
    """Where the data set's own files are on this machine: hidden from every candidate process (which may
    see its shard only)."""
    if name.startswith("sklearn."):
        import sklearn.datasets

        package = Path(sklearn.datasets.__file__).parent
        return [package / "data", package / "images", Path(sklearn.datasets.get_data_home())]
    return []


@lru_cache(maxsize=4)
def load(name: str) -> Arrays:
    """The data set called ``name``, loaded once per process (read-only arrays: every caller shares them)."""
    x, y = DATASETS.get(name)()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y
