"""The per-trial copy of the mutation surface: the user's files copied (never edited in place), a candidate's
replacement files applied to the copy, and the surface hash."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from pytest_autofl.core.contract import sha256_of
from pytest_autofl.core.surface_rules import CHECKS

SURFACE_PACKAGE = "autofl_surface"
ARCH_KNOB = "arch"  # the surface's model is ``Net(arch, seed)`` (rule AF130): the knob that picks ``arch``


def model_entry(
    params: dict[str, Any], seed: int, path: Path, task: dict[str, int], rounds: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """What the evaluator needs to rebuild and load one final global model (and the per-round models, if
    any, for its curve)."""
    return {
        "arch": params[ARCH_KNOB],
        "seed": seed,
        "path": str(path),
        "task": task,
        "rounds": [str(p) for p in rounds],
    }


PATCH_FILE = "patch.json"


def prepare_surface(
    surface_dir: Path, trial_dir: Path, files: tuple[tuple[str, str], ...] = (), diff: str = ""
) -> Path:
    """Copy the surface's Python files into ``<trial>/autofl_surface``, apply a candidate's replacement files
    there (never in the user's tree; names were validated by ``candidate_file``), save them as
    ``<trial>/patch.json`` with the artifacts, and return the package's parent."""
    package = trial_dir / SURFACE_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    for name in CHECKS:
        source = surface_dir / name
        if source.is_symlink():
            raise ValueError(f"{source} is a symlink; surface files must be regular files")
        shutil.copy2(source, package / name)
    for name, text in files:
        if name not in CHECKS or (package / name).is_symlink():
            raise ValueError(f"refusing to write {name!r}: not a surface file")
        (package / name).write_text(text)
    if files:
        (trial_dir / PATCH_FILE).write_text(json.dumps(dict(files), indent=1))
    if diff:
        (trial_dir / "patch.diff").write_text(diff)
    (package / "__init__.py").write_text('"""Per-trial copy of the mutation surface."""\n')
    return trial_dir


def surface_sha(directory: Path) -> str:
    """Hash of the surface's code files in ``directory`` (a trial's ``autofl_surface`` copy, or the source)."""
    return sha256_of(
        {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in sorted(CHECKS)}
    )
