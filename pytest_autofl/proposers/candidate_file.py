"""Candidate files: a candidate written by a person or a coding agent, e.g. ``candidates/fedprox_small_mu.yaml``::

    description: FedProx with a small proximal term
    knobs: {fedprox_mu: 0.01}
    cites: ["Li et al. 2020, FedProx, arXiv:1812.06127"]
    patch: |                     # optional: a unified diff against surface files (strict, fuzz 0) ...
      --- a/strategies.py
      +++ b/strategies.py
      @@ ... @@
    files:                       # ... or replacement surface files (the whole new text of each)
      strategies.py: |
        ...

Knobs are validated against the mutation schema (every problem named); unknown top-level keys are errors, so a
typo never silently runs the baseline. A replacement file may only name a file the schema lists (no paths, no
``..``, no absolute names, text only), and the replaced surface must pass the AST contract check before
anything runs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from pytest_autofl.core.candidate import Candidate, CandidateFactory
from pytest_autofl.core.errors import SchemaError
from pytest_autofl.core.surface_rules import CHECKS
from pytest_autofl.proposers.patching import PatchError, apply, parse

ALLOWED_KEYS = {"description", "knobs", "cites", "files", "patch"}
MAX_FILE_BYTES = 1_000_000


def load_candidate_file(path: Path, factory: CandidateFactory, surface_dir: Path | None = None) -> Candidate:
    """Parse and validate a candidate file; raises SchemaError with the file name and every problem."""
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaError(f"{path}: not a readable YAML candidate: {exc}") from None
    return candidate_from_mapping(raw, path, factory, surface_dir, "file", f"file:{path.name}")


def candidate_from_mapping(
    raw: Any, path: Path, factory: CandidateFactory, surface_dir: Path | None, proposer: str, source: str
) -> Candidate:
    """A candidate from the mapping a candidate file holds (also what an LLM answer becomes); ``path`` names
    it in errors. Raises SchemaError with every problem."""
    if not isinstance(raw, dict):
        raise SchemaError(
            f"{path}: a candidate file is a mapping with 'knobs' and optional 'description', 'cites'"
        )
    unknown = sorted(set(raw) - ALLOWED_KEYS)
    if unknown:
        raise SchemaError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(ALLOWED_KEYS)}")
    knobs = raw.get("knobs") or {}
    if not isinstance(knobs, dict):
        raise SchemaError(f"{path}: 'knobs' must be a mapping of knob: value")
    cites = raw.get("cites") or []
    if not isinstance(cites, list) or not all(isinstance(c, str) for c in cites):
        raise SchemaError(f"{path}: 'cites' must be a list of strings")
    try:
        candidate = factory.make(knobs, proposer=proposer, source=source)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None
    replacements = raw.get("files") or {}
    if raw.get("patch"):
        if replacements:
            raise SchemaError(f"{path}: give either 'patch' (a unified diff) or 'files', not both")
        replacements = _apply_patch(path, raw["patch"], factory.schema.files, surface_dir)
    files = _replacement_files(path, replacements, factory.schema.files)
    for name, _ in files:
        if surface_dir is not None and (surface_dir / name).is_symlink():
            raise SchemaError(
                f"{path}: surface file {name!r} is a symlink in {surface_dir}; refusing to patch it"
            )
    description = str(raw.get("description") or candidate.description)
    if cites:
        description += " [src: " + "; ".join(cites) + "]"
    family = candidate.family + ("+patch" if files else "")
    diff = raw["patch"] if raw.get("patch") else ""
    return replace(
        candidate, description=description, files=files, family=family, diff=diff, cites=tuple(cites)
    )


def _apply_patch(path: Path, diff: Any, allowed: tuple[str, ...], surface_dir: Path | None) -> dict[str, str]:
    """A unified diff against the surface, applied strictly in memory (the user's files are only read)."""
    if not isinstance(diff, str):
        raise SchemaError(f"{path}: 'patch' must be the text of a unified diff")
    if surface_dir is None:
        raise SchemaError(f"{path}: a patch needs the surface directory to apply to")
    try:
        names = set(parse(diff))
        bad = sorted(n for n in names if n not in allowed)
        if bad:
            raise PatchError(
                f"the patch edits {bad}, not files the mutation schema lets a candidate change ({list(allowed)})"
            )
        for name in names:
            if (surface_dir / name).is_symlink():
                raise PatchError(f"surface file {name!r} is a symlink in {surface_dir}; refusing to patch it")
        return apply({name: (surface_dir / name).read_text() for name in names}, diff)
    except PatchError as exc:
        raise SchemaError(f"{path}: {exc}") from None


def _replacement_files(path: Path, files: Any, allowed: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not isinstance(files, dict):
        raise SchemaError(f"{path}: 'files' must map a surface file name to its new text")
    problems = []
    for name, text in files.items():
        if (
            not isinstance(name, str)
            or "/" in name
            or "\\" in name
            or name.startswith((".", "~"))
            or ":" in name
        ):
            problems.append(f"{name!r} is not a plain surface file name (no paths, '..' or absolute names)")
        elif name not in allowed:
            problems.append(
                f"{name!r} is not a file the mutation schema lets a candidate change ({list(allowed)})"
            )
        elif not isinstance(text, str) or "\x00" in text or len(text.encode()) > MAX_FILE_BYTES:
            problems.append(f"{name!r} must be text (no NUL bytes, at most {MAX_FILE_BYTES} bytes)")
        else:
            check = CHECKS.get(name)
            problems += [str(v) for v in check(text, f"{path.name}:files:{name}")] if check else []
    if problems:
        raise SchemaError(f"{path}: " + "; ".join(problems))
    return tuple(sorted(files.items()))
