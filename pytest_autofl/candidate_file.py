"""Candidate files: a candidate written by a person or a coding agent, e.g. ``candidates/fedprox_small_mu.yaml``::

    description: FedProx with a small proximal term
    knobs: {fedprox_mu: 0.01}
    cites: ["Li et al. 2020, FedProx, arXiv:1812.06127"]

Knobs are validated against the mutation schema (every problem named); unknown top-level keys are errors, so a
typo never silently runs the baseline. Patches over surface files arrive in a later release.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .candidate import Candidate
from .errors import SchemaError
from .proposer import BuiltinProposer

ALLOWED_KEYS = {"description", "knobs", "cites"}


def load_candidate_file(path: Path, proposer: BuiltinProposer) -> Candidate:
    """Parse and validate a candidate file; raises SchemaError with the file name and every problem."""
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaError(f"{path}: not a readable YAML candidate: {exc}") from None
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
        candidate = proposer.make(knobs, source=f"file:{path.name}")
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None
    description = str(raw.get("description") or candidate.description)
    if cites:
        description += " [src: " + "; ".join(cites) + "]"
    return replace(candidate, description=description)
