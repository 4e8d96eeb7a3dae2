"""What a contract's ``dataset`` block reads: its file, and the hash of that file (or of a loader module's
source) that makes the data part of ``contract_sha``."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from pytest_autofl.core.errors import ContractError


def dataset_file(spec: dict[str, Any], directory: Path) -> Path:
    """The file a dataset block names (``path``, relative to the contract's directory)."""
    path = Path(str(spec["path"])).expanduser()
    return path if path.is_absolute() else directory / path


def data_identity(spec: Any, directory: Path) -> str:
    """The hash of what the dataset block reads: its ``path`` file (or every file under a ``path`` directory,
    with their names), or a ``loader`` module's source. A data set registered by name (the bundled sklearn
    sets) has none: its data comes with the installed package."""
    if not isinstance(spec, dict):
        return ""
    if "path" in spec:
        target = dataset_file(spec, directory)
        where = f"{directory / 'contract.json'}: field 'dataset.path'"
    elif "loader" in spec:
        module = str(spec["loader"]).partition(":")[0]
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.origin:
            raise ContractError(
                f"{directory / 'contract.json'}: field 'dataset.loader': cannot find module {module!r}"
            )
        target, where = Path(found.origin), f"{directory / 'contract.json'}: field 'dataset.loader'"
    else:
        return ""
    try:
        if not target.is_dir():
            return hashlib.sha256(target.read_bytes()).hexdigest()
        digest = hashlib.sha256()
        for path in sorted(p for p in target.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(target).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()
    except OSError as exc:
        raise ContractError(f"{where}: cannot read {target}: {exc.strerror or exc}") from None
