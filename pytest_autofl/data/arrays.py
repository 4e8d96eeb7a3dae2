"""The harness' form of a data set: the whole set as arrays (features, encoded labels, optional sites), made
from whatever a loader returns — arrays or a torch ``Dataset`` — and checked once, with the place it came from
in every error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_autofl.core.errors import ContractError


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


def from_torch(dataset: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A map-style torch ``Dataset`` of ``(input, label)`` items (e.g. a torchvision set read from a local
    root) as stacked arrays: its inputs keep their shape (C, H, W for images)."""
    try:
        items = [dataset[i] for i in range(len(dataset))]
        x = np.stack([np.asarray(item[0], dtype=np.float32) for item in items])
        y = np.asarray([int(item[1]) for item in items])
    except Exception as exc:  # the user's Dataset: named, with what it raised
        raise ContractError(
            f"{where}: the Dataset's items must be (input, label) pairs of one shape: {type(exc).__name__}: {exc}"
        ) from None
    return x, y
