"""The kinds of user data a contract's ``dataset`` block can describe (``"kind": ...``): tables (CSV, Parquet),
``.npz`` arrays, a folder of images per class, and a Python loader (arrays or a torch ``Dataset``). Each reads
what the block names and nothing else; it never downloads. Relative paths are relative to the contract's
directory.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from pytest_autofl.core.dataset_spec import dataset_file
from pytest_autofl.core.errors import ContractError
from pytest_autofl.data.arrays import DataSet, from_torch, make

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


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
    """``"loader": "package.module:function"``: the function returns (x, y) or (x, y, sites) as arrays, or a
    torch ``Dataset`` of (input, label) items (e.g. a torchvision set read from a local root)."""
    module, _, function = str(spec.get("loader", "")).partition(":")
    try:
        loaded = getattr(importlib.import_module(module), function)()
    except Exception as exc:  # the user's loader: named, with what it raised
        raise ContractError(
            f"{where}: the loader {spec.get('loader')!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(loaded, tuple) and hasattr(loaded, "__getitem__") and hasattr(loaded, "__len__"):
        loaded = from_torch(loaded, where)
    if not isinstance(loaded, tuple) or len(loaded) not in (2, 3):
        raise ContractError(
            f"{where}: the loader must return (x, y) or (x, y, sites) arrays, or a Dataset of (input, label)"
        )
    x, y, sites = (*loaded, None)[:3]
    return make(x, y, sites, where, bool(spec.get("standardize", False)))


def _image_folder(spec: dict[str, Any], directory: Path, where: str) -> DataSet:
    """``"path"``: a directory with one subdirectory of images per class (torchvision's ``ImageFolder``
    layout); ``"size": [height, width]`` every image is resized to; ``"grayscale"``: one channel, not three.
    Pixels scaled to [0, 1], each example (channels, height, width)."""
    from PIL import Image

    root = dataset_file(spec, directory)
    if not root.is_dir():
        raise ContractError(
            f"{where}: {root} is not a directory; put the images there, one subdirectory per class "
            "(<path>/<class>/<image>.png)"
        )
    size = spec.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ContractError(f"{where}: 'dataset.size' must be [height, width] in pixels, got {size!r}")
    mode, (height, width) = ("L" if spec.get("grayscale") else "RGB"), size
    x, y = [], []
    for folder in sorted(d for d in root.iterdir() if d.is_dir()):
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            with Image.open(path) as image:
                pixels = np.asarray(image.convert(mode).resize((width, height)), dtype=np.float32) / 255.0
            x.append(pixels.reshape(height, width, -1).transpose(2, 0, 1))
            y.append(folder.name)
    if not x:
        raise ContractError(
            f"{where}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders of {root}"
        )
    return make(np.stack(x), np.array(y), where=where, standardize=bool(spec.get("standardize", False)))


KIND_LOADERS = {
    "csv": _csv,
    "parquet": _parquet,
    "npz": _npz,
    "python": _python,
    "image_folder": _image_folder,
}
